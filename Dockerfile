# Dockerfile - prunerd on Debian 12 (bookworm): build with meson (release), run as user prunerd.
#
# Main build: PyPI's torch 2.11 (CUDA compiled in) in the venv /opt/prunerd/venv,
# which the image ships: the binary's rpath points into it, and the torch
# libraries find their nvidia-* libraries through their own RPATH there.
#   docker build -t prunerd .
#   docker run --gpus all ...          (the NVIDIA container toolkit; CPU without it)
# Debian's libtorch 1.13 (CPU only, a smaller image, no venv):
#   docker build -t prunerd:cpu --build-arg TORCH=system .
# Run (see docs/operations.md): the server listens on 0.0.0.0:8080, which
# prunerd refuses without tokens, so mount a config that has a [tokens] section:
#   docker run -p 8080:8080 -v prunerd-data:/var/lib/prunerd \
#     -v $PWD/prunerd.conf:/etc/prunerd/prunerd.conf:ro \
#     -v /srv/models:/srv/models:ro -v /srv/data:/srv/data:ro prunerd
FROM debian:bookworm

# meson's -Dtorch: python (the venv's torch, the main build) or system.
ARG TORCH=python
ARG VENV=/opt/prunerd/venv

# The packages of tools/deps.sh, in the same order (tests/test_deploy.py keeps
# the two lists equal), plus curl for the HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      meson ninja-build pkg-config gcc g++ \
      libtorch-dev libopenblas0-pthread \
      libmicrohttpd-dev libjansson-dev libsqlite3-dev libutf8proc-dev libssl-dev libarchive-dev \
      python3-venv chromium \
      libpq-dev postgresql \
      curl \
 && rm -rf /var/lib/apt/lists/*

COPY . /src
WORKDIR /src
# The run-time venv: torch alone, at the version tools/requirements.txt pins
# (the oracles and test tools stay out of the image).
RUN if [ "${TORCH}" = python ]; then \
      python3 -m venv "${VENV}" \
      && "${VENV}/bin/pip" install --no-cache-dir "$(grep '^torch==' tools/requirements.txt)"; \
    fi
RUN meson setup /build --buildtype=release --prefix=/usr/local -Dtorch="${TORCH}" -Dpython="${VENV}/bin/python" \
 && meson compile -C /build prunerd \
 && meson install -C /build --no-rebuild \
 && /usr/local/bin/prunerd version

RUN useradd --system --user-group --home-dir /var/lib/prunerd --shell /usr/sbin/nologin prunerd \
 && install -d -o prunerd -g prunerd -m 0750 /var/lib/prunerd \
 && install -d -m 0755 /etc/prunerd /srv/models /srv/data \
 && sed -e 's/^listen = 127.0.0.1:8080/listen = 0.0.0.0:8080/' \
      deploy/prunerd.conf.example > /etc/prunerd/prunerd.conf

VOLUME ["/var/lib/prunerd"]
EXPOSE 8080
USER prunerd
WORKDIR /var/lib/prunerd

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1

# SIGTERM (docker stop) stops the running job at a batch boundary and
# re-queues it; [limits] stop_timeout is 20 s, so give docker stop -t 30.
STOPSIGNAL SIGTERM
CMD ["prunerd", "serve", "--config", "/etc/prunerd/prunerd.conf"]
