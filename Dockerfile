# Serving image: the API only (ONNX Runtime + FAISS + SQLite), no torch. Artifacts are mounted at /artifacts.
#   docker build -t listing-search:latest .
#   docker run -p 8000:8000 -v "$PWD/artifacts:/artifacts" -e LISTING_SEARCH_SERVE__API_KEY=... listing-search
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf /app/src

RUN useradd --create-home --uid 10001 app && mkdir -p /artifacts && chown app:app /artifacts
USER app

ENV LISTING_SEARCH_ARTIFACTS_DIR=/artifacts \
    LISTING_SEARCH_SERVE__HOST=0.0.0.0 \
    LISTING_SEARCH_SERVE__PORT=8000
# Listings added through the API are written here (catalog.sqlite, index/, images/): mount it writable.
VOLUME ["/artifacts"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"

CMD ["listing-search", "serve", "--artifacts", "/artifacts", "--host", "0.0.0.0", "--port", "8000"]
