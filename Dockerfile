# stationmon service image. Build: docker build -t stationmon .
# Run:   docker run -v $PWD/configs/example.toml:/etc/stationmon/stationmon.toml:ro \
#          -e INFLUX_TOKEN=... -e STATIONMON_TOKEN=... -p 9640:9640 stationmon
#        (the status page and API listen on 0.0.0.0:9640 inside: STATIONMON_HTTP_LISTEN below)
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stationmon ./stationmon
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --system --home-dir /var/lib/stationmon --create-home --uid 10001 stationmon \
    && mkdir -p /etc/stationmon /var/lib/stationmon/spool \
    && chown -R stationmon /var/lib/stationmon
COPY --from=build /install /usr/local
COPY configs/example.toml /etc/stationmon/stationmon.toml
USER stationmon
VOLUME ["/var/lib/stationmon"]
EXPOSE 9640
# The spool lives in the volume, so readings waiting for InfluxDB survive a container restart.
ENV STATE_DIRECTORY=/var/lib/stationmon
# Reachable from outside the container whatever the config's [http] listen says (127.0.0.1 in
# example.toml): this overrides it. Set it to another HOST:PORT at `docker run -e` to move it.
ENV STATIONMON_HTTP_LISTEN=0.0.0.0:9640
# /healthz answers 503 while a component fails (urlopen raises, the check fails). docker-compose.yml's
# stationmon healthcheck is the same command with the same timings (tests/integration/test_container.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('STATIONMON_HTTP_LISTEN', '127.0.0.1:9640').rpartition(':')[2]; urllib.request.urlopen('http://127.0.0.1:' + port + '/healthz', timeout=4)"]
ENTRYPOINT ["stationmon"]
CMD ["run", "-c", "/etc/stationmon/stationmon.toml", "--log-format", "json"]
