"""The BentoML service around the promoted model (arrives with the build-bento issue)."""
