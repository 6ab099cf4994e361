"""What serves a model and proves it does: the ONNX scorer and the served-model directory
(the same code inside the bento and the Lambda package), the bento and Lambda builds, what an
artifact ships (`packaging`), the smoke test, and the deploy targets (`targets/`, one module per
target). Imports `core` and `adapters`."""
