# ktape in a container: a static binary on a distroless base, run as a
# non-root user. Build from the repository root:
#
#	docker build -t ktape:dev --build-arg VERSION=$(git describe --always --dirty) .
#
# docs/kubernetes/ runs it as a group of workers.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# No cgo: the binary needs no C library, so the image needs none.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ktape ./cmd/ktape

# distroless/static has CA certificates (TLS to brokers and object stores),
# /etc/passwd with a nonroot user, and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ktape /usr/local/bin/ktape
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ktape"]
CMD ["--help"]
