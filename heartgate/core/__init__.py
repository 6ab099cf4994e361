"""The vocabulary every other package speaks: the typed results one step hands the next
(`contracts`), the one config model and its profiles (`config`), the Run form's parameters,
the error types, lineage tags, the ECG CSV format and the library-banner guard. Pure: no I/O
beyond reading a config file, and it imports nothing else of heartgate."""
