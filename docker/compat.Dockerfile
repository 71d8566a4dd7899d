# The broker-neutral compatibility suite (compat_tests/suite/README.md) as an image, for any
# Kafka-compatible broker the container can reach:
#
#   scripts/compat-image.sh                                   # builds sluice-compat
#   docker run --rm --network host sluice-compat --bootstrap 127.0.0.1:9092 [compat.sh options]
#
# scripts/compat-image.sh stages the build context: the host-built runner (no compiler in the
# image), scripts/compat.sh and the suite's scripts, in the layout of the source tree so that
# compat.sh finds kcat.sh where it looks; the runner is found on PATH. The base is the local
# image of scripts/docker-base.sh (Debian bookworm minbase with librdkafka1, kcat, tini): no
# registry is needed. There is no Node.js in the image (Debian's is older than the 20.19.4 that
# @platformatic/kafka needs), so compat.sh reports the platformatic scenarios as SKIP.
ARG BASE=sluice-base:bookworm
FROM ${BASE}

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/compat \
      --shell /usr/sbin/nologin compat
COPY sluice-compat-suite /usr/local/bin/sluice-compat-suite
COPY scripts/ /opt/sluice-compat/scripts/
COPY compat_tests/suite/ /opt/sluice-compat/compat_tests/suite/

USER compat
WORKDIR /home/compat
# tini as PID 1: Ctrl-C and `docker stop` reach compat.sh and its runners.
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sluice-compat/scripts/compat.sh"]
CMD ["--help"]
