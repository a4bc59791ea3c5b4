# Triton Inference Server 2.51 (the release the test harness runs from the nvidia-pytriton wheel).
# Build:  docker build -f docker/triton.Dockerfile -t triton-llmops docker/
# Models are published into /models by TritonDeployOperator; the server runs in explicit
# model-control mode so that deploys decide what is loaded.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--strict-readiness=true"]
