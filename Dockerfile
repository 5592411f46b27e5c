# The lsr service image: `lsr serve` (api) and `lsr index` (indexer) from one CPU-only install.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# CPU torch first, from PyTorch's CPU index, so the project's torch==2.13.0 pin never pulls CUDA wheels.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY lsr lsr
COPY retrieval retrieval
COPY indexer indexer
COPY api api
COPY eval eval
RUN pip install .
EXPOSE 8000
ENTRYPOINT ["lsr"]
CMD ["--help"]
