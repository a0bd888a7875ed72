"""The report layer: tables, summary metrics, the grid's and the variants' figures, the HTML page, the
thesis's and the literature's reference numbers, and the terminal's views (`vaebench eval`, `vaebench runs`).
Only the `report` stage and the CLI import it: an edit here re-runs no training or scoring."""
