# metallb-py: one image for both components.
#   controller: metallb-py controller --port=7472 --config=config --log-level=info
#   speaker:    metallb-py speaker --port=7472 --config=config --log-level=info
# The default user is nobody (65534). The controller runs as that user; the speaker's manifest
# sets runAsUser 0 with only the NET_RAW capability, which raw ARP/NDP sockets need.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY metallb_py ./metallb_py
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages/metallb_py
USER 65534:65534
EXPOSE 7472/tcp 7946/udp
ENTRYPOINT ["metallb-py"]
CMD ["--help"]
