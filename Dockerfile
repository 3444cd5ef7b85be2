# labelq: one static binary with every role (api, worker, scheduler, relay, migrate).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/labelq ./cmd/labelq

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/labelq /usr/local/bin/labelq
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/labelq"]
CMD ["all"]
