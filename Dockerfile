# Build the project into a virtual environment, then copy only that environment
# into a clean image: no build files, pip caches or sources in the final layers.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
# The dependencies come from the lock (.ci/lock), hash-checked, in a layer of their own that
# a change to the sources doesn't rebuild. The lock holds the build backend too, so the project
# builds from pinned parts without fetching one.
COPY requirements/runtime.txt ./requirements/
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY server ./server
COPY client_sdk ./client_sdk
COPY presence_protocol ./presence_protocol
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PRESENCE_HOST=0.0.0.0 \
    PRESENCE_PORT=8080 \
    PRESENCE_DATA_DIR=/data

# The embedded Valkey and the generated token secret live in /data.
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home presence \
    && mkdir /data \
    && chown presence:presence /data

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PRESENCE_PORT', '8080') + '/healthz', timeout=4)"]

CMD ["presence-server"]
