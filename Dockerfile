# The images of the project, built from the repository root:
#   docker build --target operator   -t ghcr.io/hitachienergy/pull-state-operator:0.1.0 .
#   docker build --target count-app  -t ghcr.io/hitachienergy/pull-state-count-app:0.1.0 .
#   docker build --target go-app     -t ghcr.io/hitachienergy/pull-state-go-app:0.1.0 .
#   docker build --target python-app -t ghcr.io/hitachienergy/pull-state-python-app:0.1.0 .
# The operator image has two entry points (`controller`, `helper`), chosen by the manifests' args. The three
# apps are the examples of examples/ (Node.js, Go and Python, each with its standard library only).
# TypeScript is compiled in a full Node image; the runtimes are distroless (no shell, no package manager),
# run as the non-root user 65532 the manifests also set, and hold production dependencies only.
# Every base image is pinned by digest (the tag says what it is, the digest which build): a rebuild of a
# release uses the same bases. Dependabot (.github/dependabot.yml) proposes new digests as pull requests.

FROM node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY examples ./examples
RUN npm run build

FROM node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

FROM gcr.io/distroless/nodejs22-debian12:nonroot@sha256:13593b7570658e8477de39e2f4a1dd25db2f836d68a0ba771251572d23bb4f8e AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# The validators are compiled from the CRD's own schema when the program starts.
COPY crds ./crds
USER 65532:65532

FROM runtime AS count-app
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/examples/count-app ./dist/examples/count-app
EXPOSE 8080
ENTRYPOINT ["/nodejs/bin/node", "dist/examples/count-app/main.js"]

FROM runtime AS operator
COPY --from=build /app/dist/src ./dist/src
EXPOSE 9090 9500
ENTRYPOINT ["/nodejs/bin/node", "dist/src/main.js"]
CMD ["--help"]

# The Go example app: one static binary.
# Built on the build machine's platform for the target's: Go cross-compiles, no emulation needed.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS go-app-build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY examples/go-app/ ./
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags=-s -o /go-app .

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639 AS go-app
COPY --from=go-app-build /go-app /app/go-app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app/go-app"]

# The Python example app: one script, the standard library only.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS python-app
ENV PYTHONDONTWRITEBYTECODE=1
COPY examples/python-app/main.py /app/main.py
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python3", "/app/main.py"]
