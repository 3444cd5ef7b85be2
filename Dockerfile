# labelq: one static binary with every role (api, worker, scheduler, relay, migrate).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/labelq ./cmd/labelq

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/labelq /usr/local/bin/labelq
# Every interface inside the container: labelq then refuses a default or short
# operator password and MinIO's default keys (see the README's Security section).
ENV LABELQ_HTTP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/labelq"]
CMD ["all"]
