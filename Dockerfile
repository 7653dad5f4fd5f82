# One image for every kgcelery role; the command chooses the role:
#   kgcelery bridge | kgcelery topics create | kgcelery check ...
#   celery -A kgcelery.app beat | worker -Q control | worker -Q client.<id> | flower
# Slim: the dependencies are wheels (no compiler), installed into a virtualenv in a build
# stage and copied over; the runtime runs as an unprivileged user with no write access to
# its code (Kubernetes can mount the root filesystem read-only; only /tmp is written).
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, exactly as locked (versions and hashes: requirements/image.lock,
# `make lock`), so that a code change reuses this layer. The build backend is in the
# lock too, so kgcelery itself builds without fetching anything unpinned.
COPY requirements/image.lock ./
RUN pip install --require-hashes --no-deps -r image.lock
COPY pyproject.toml README.md beat_schedule.py ./
COPY kgcelery ./kgcelery
# pip check: the lock holds everything kgcelery requires (tests/test_deploy_image.py
# replays these steps).
RUN pip install --no-deps --no-build-isolation . && pip check

FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --gid 10001 kgcelery \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin kgcelery
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The kubernetes scaler and `kgcelery deploy render` read the per-client templates here
# (KGCELERY_KUBERNETES_TEMPLATE_DIR=deploy, relative to /app).
COPY deploy ./deploy
USER 10001:10001
# No HEALTHCHECK: it depends on the role; docker-compose.yml and deploy/ give each role
# its own `kgcelery check ...`.
CMD ["kgcelery", "--help"]
