"""The vocabulary every other package speaks: the typed results one step hands the next
(`contracts`), the one config model and its profiles (`config`), the Run form's parameters,
the error types, lineage tags, the ECG CSV format and the library-banner guard. No engine
behind it (the only file it reads is the config; `quiet` filters stderr while a library
imports), and it imports nothing else of heartgate."""
