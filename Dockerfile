# One image for every Clarion service; compose picks the service with `clarion serve <name>`.

# The report pages' assets (web/reports, docs/reports-ui.md): uPlot and the pages' script and
# stylesheet bundled into services/gateway/static with hashed names and a manifest.json.
FROM node:22-bookworm-slim AS web
WORKDIR /src/web/reports
COPY web/reports/package.json web/reports/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/reports/ ./
RUN npm run build

FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl build-essential cmake ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
# The wheel carries the built assets (pyproject.toml's maturin include).
COPY --from=web /src/services/gateway/static services/gateway/static
RUN pip wheel --no-deps -w /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && useradd --system clarion
USER clarion
ENV CLARION_LOG_FORMAT=json
ENTRYPOINT ["clarion"]
