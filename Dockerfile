# One image for every kgcelery role; the command chooses the role.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 kgcelery
WORKDIR /app
COPY pyproject.toml README.md beat_schedule.py ./
COPY kgcelery ./kgcelery
RUN pip install --no-cache-dir .
USER kgcelery
CMD ["kgcelery", "--help"]
