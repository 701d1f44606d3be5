# One image for the API, the migration job and GPU workers.
# Build: docker build -t hps .   (TORCH_INDEX picks the torch build; the default is CUDA 12.6 for GPUs)
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HPS_DATA_DIR=/var/lib/hps

# espeak-ng synthesizes the speech-recognition task's built-in speech on a worker's first use.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
# hps/ holds the installable package; its server, workers, search_spaces and migrations are links to
# the folders beside it, so all of them are copied.
COPY hps ./hps
COPY service ./service
COPY workers ./workers
COPY search_spaces ./search_spaces
COPY migrations ./migrations
# torch first, from the index that matches the hardware; then hps with the pinned versions of the rest.
RUN grep '^torch==' constraints.txt > /tmp/torch.txt \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX" -r /tmp/torch.txt \
    && grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
    && pip install --no-cache-dir -c /tmp/constraints.txt . \
    && useradd --create-home --uid 10001 hps && mkdir -p /var/lib/hps && chown hps /var/lib/hps

USER hps
EXPOSE 8000
CMD ["hps", "serve", "--host", "0.0.0.0", "--port", "8000"]
