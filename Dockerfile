# The `insights` binary in a slim image. Build: docker build -t customerai-insights:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# libtorch (CPU), the MiniLM and multilingual encoders and the VADER sets, pinned by sha256
# (scripts/setup.sh).
RUN scripts/setup.sh models
# librdkafka is built from its bundled sources with the toolchain the image has.
RUN cargo build --release --locked --bin insights

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/.tools/libtorch/lib /opt/libtorch/lib
COPY --from=build /src/.tools/models/all-MiniLM-L6-v2 /opt/insights/encoder
COPY --from=build /src/.tools/models/use-multilingual-v3 /opt/insights/multilingual-encoder
COPY models/sentiment-minilm /opt/insights/sentiment-minilm
COPY models/sentiment-use-multilingual /opt/insights/sentiment-use-multilingual
COPY --from=build /src/target/release/insights /usr/local/bin/insights
COPY topology.toml /etc/insights/topology.toml
ENV INSIGHTS_TOPOLOGY=/etc/insights/topology.toml \
    INSIGHTS_SENTIMENT_MODEL=/opt/insights/sentiment-minilm \
    INSIGHTS_ENCODER_DIR=/opt/insights/encoder \
    INSIGHTS_SENTIMENT_MULTILINGUAL_MODEL=/opt/insights/sentiment-use-multilingual \
    INSIGHTS_MULTILINGUAL_ENCODER_DIR=/opt/insights/multilingual-encoder \
    LD_LIBRARY_PATH=/opt/libtorch/lib \
    OMP_WAIT_POLICY=PASSIVE
ENTRYPOINT ["insights"]
