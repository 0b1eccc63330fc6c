# stationmon service image. Build: docker build -t stationmon .
# Run:   docker run -v $PWD/configs/example.toml:/etc/stationmon/stationmon.toml:ro \
#          -e INFLUX_TOKEN=... -e STATIONMON_TOKEN=... -p 9640:9640 stationmon
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
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9640/healthz', timeout=4)" || exit 1
ENTRYPOINT ["stationmon"]
CMD ["run", "-c", "/etc/stationmon/stationmon.toml", "--log-format", "json"]
