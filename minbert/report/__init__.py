"""The results machinery: the report layer above the taught modules (notebook 08).

Every row of the seed report's table as data (`rows`, the `presets/*.toml` files), one
command that trains and scores them into result JSONs (`experiments`), where each run was
made (`provenance`), the untrained row 0 (`zero_shot`), the cost model (`plan`), the
readers that turn result JSONs into tables (`results`) and row-against-row intervals
(`significance`). It imports the taught modules in `minbert/` (train, mlm, data, ...);
they never import it.
"""
