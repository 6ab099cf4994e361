"""heartgate: keeps an ECG anomaly detector in production, replacing it only with a model proven better."""
