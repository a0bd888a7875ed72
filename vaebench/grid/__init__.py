"""The grid engines: the pipeline's stages as a graph (read from DVC), run in waves on DVC's experiment queue
or as tasks on a Dask cluster, and `vaebench-grid`, their command. No stage imports them: they only start
`dvc repro` of stages."""
