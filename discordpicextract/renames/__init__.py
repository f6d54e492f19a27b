"""Planned, journaled, undoable renames (the timestamp scripts' engine).

- `values`: the command-line values (dates, hours) and the shift function;
- `plan`: pure planning (`plan_renames`, `plan_mapping`, step ordering);
- `journal`: the folder's journal and lock, the batches read back;
- `apply`: `apply_plan`, moving files without ever replacing one;
- `recovery`: `undo_last_batch`, `recover` after a crash;
- `report`: results as lines for the scripts to print;
- `command`: the flags and flow the three scripts share.

Only the scripts print; these modules return results and raise
`discordpicextract.errors`.
"""
