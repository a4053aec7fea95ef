# The `insights` binary in a slim image. Build: docker build -t customerai-insights:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is built from its bundled sources with the toolchain the image has.
COPY . .
RUN cargo build --release --locked --bin insights

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/insights /usr/local/bin/insights
COPY topology.toml /etc/insights/topology.toml
ENV INSIGHTS_TOPOLOGY=/etc/insights/topology.toml
ENTRYPOINT ["insights"]
