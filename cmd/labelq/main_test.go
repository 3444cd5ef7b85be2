package main

import (
	"bytes"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/labelq/labelq/internal/config"
)

func TestHelpListsEveryVariable(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	for _, v := range config.Vars() {
		require.Contains(t, out.String(), v.Name)
	}
	for _, c := range []string{"all", "api", "worker", "scheduler", "relay", "migrate up", "token create"} {
		require.Contains(t, out.String(), c)
	}
}

func TestBadConfigurationIsExplained(t *testing.T) {
	t.Setenv("LABELQ_WORKER_CONCURRENCY", "many")
	t.Setenv("LABELQ_S3_BUCKET", "Not_A_Bucket")
	t.Setenv("LABELQ_S3_SECRET_KEY", "s3cr3t-value")
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run([]string{"worker"}, &out, &errOut))
	require.Contains(t, errOut.String(), "LABELQ_WORKER_CONCURRENCY")
	require.Contains(t, errOut.String(), "want a whole number")
	require.NotContains(t, errOut.String(), "s3cr3t-value")
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run([]string{"frobnicate"}, &out, &errOut))
	require.Contains(t, errOut.String(), `unknown command "frobnicate"`)
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     any               `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

// TestDockerCompose parses docker-compose.yml (no Docker engine runs here) and checks
// it against the configuration code: every LABELQ_ variable it sets exists and
// loads, and the addresses it names are the services and ports it defines.
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(raw, &cf))

	for _, name := range []string{"postgres", "redis", "minio", "minio-init", "migrate", "api", "worker", "scheduler", "relay"} {
		require.Contains(t, cf.Services, name, "service %s", name)
	}
	for _, name := range []string{"postgres", "redis", "minio", "api"} {
		require.NotNil(t, cf.Services[name].Healthcheck, "%s needs a health check", name)
	}
	known := map[string]bool{}
	for _, v := range config.Vars() {
		known[v.Name] = true
	}
	published := func(svc string) []string {
		var ports []string
		for _, p := range cf.Services[svc].Ports {
			parts := strings.Split(p, ":")
			ports = append(ports, parts[len(parts)-1])
		}
		return ports
	}
	roles := map[string]string{"migrate": "migrate", "api": "api", "worker": "worker", "scheduler": "scheduler", "relay": "relay"}
	for svc, role := range roles {
		s := cf.Services[svc]
		require.NotNil(t, s.Build, "%s is built from the repository", svc)
		cmd, ok := s.Command.([]any)
		require.True(t, ok, "%s has a command list", svc)
		require.Equal(t, role, cmd[0], "%s runs `labelq %s`", svc, role)
		for k := range s.Environment {
			if strings.HasPrefix(k, "LABELQ_") {
				require.True(t, known[k], "%s sets %s, which labelq does not read", svc, k)
			}
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = interpolate(t, v)
		}
		cfg, err := config.Load(func(k string) string { return env[k] })
		require.NoError(t, err, "%s's environment does not load", svc)

		require.Contains(t, cfg.DatabaseURL, "@postgres:5432/")
		// Only migrations run as the schema owner; every other process logs in as a
		// least-privilege role (migrations/00008) with a password from .env.
		if svc == "migrate" {
			require.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://labelq:"), "migrate runs as the owner")
		} else {
			require.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://labelq_worker:"+composeVars["LABELQ_WORKER_DB_PASSWORD"]+"@"), "%s runs as labelq_worker", svc)
			require.True(t, strings.HasPrefix(cfg.APIDatabaseURL, "postgres://labelq_api_login:"+composeVars["LABELQ_API_DB_PASSWORD"]+"@"), "%s's API pool is labelq_api_login", svc)
		}
		require.Equal(t, "redis://:"+composeVars["REDIS_PASSWORD"]+"@redis:6379/0", cfg.RedisURL)
		host, _, err := net.SplitHostPort(cfg.S3Endpoint)
		require.NoError(t, err)
		require.Equal(t, "minio", host)
		require.Contains(t, string(raw), "local/"+cfg.S3Bucket, "minio-init makes the configured bucket")
		// labelq uses a MinIO user of its own, which minio-init creates, not the root keys.
		require.NotEqual(t, interpolate(t, cf.Services["minio"].Environment["MINIO_ROOT_USER"]), cfg.S3AccessKey)
		require.Equal(t, composeVars["LABELQ_S3_ACCESS_KEY"], cfg.S3AccessKey)
		require.Equal(t, composeVars["LABELQ_S3_SECRET_KEY"], cfg.S3SecretKey)
		if svc == "api" {
			_, httpPort, err := net.SplitHostPort(cfg.HTTPAddr)
			require.NoError(t, err)
			require.Contains(t, published("api"), httpPort)
			require.NotEmpty(t, cfg.OperatorPassword, "the API's /monitoring needs an operator password")
		}
	}
	require.Equal(t, "service_completed_successfully", cf.Services["api"].DependsOn["migrate"].Condition)
	// The login roles of migration 00008 are created on a new volume with passwords
	// from .env, never a password written in the file.
	for _, role := range []string{"labelq_api_login", "labelq_worker"} {
		require.Regexp(t, `CREATE ROLE `+role+` LOGIN NOSUPERUSER .*PASSWORD :'`, string(raw))
	}
	require.NotRegexp(t, `PASSWORD '`, string(raw), "a role password is written in docker-compose.yml")
	for _, v := range []string{"LABELQ_API_DB_PASSWORD", "LABELQ_WORKER_DB_PASSWORD"} {
		require.Equal(t, composeVars[v], interpolate(t, cf.Services["postgres"].Environment[v]), "postgres's init script reads %s", v)
	}
	require.Equal(t, "service_completed_successfully", cf.Services["api"].DependsOn["minio-init"].Condition)

	// Nothing but labelq's port is published beyond loopback; no standalone asynqmon.
	for name, s := range cf.Services {
		require.NotContains(t, s.Image, "asynqmon", "%s: labelq serves its own asynqmon at /monitoring", name)
		for _, p := range s.Ports {
			if name == "api" {
				continue
			}
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s publishes %s beyond loopback", name, p)
		}
	}
	require.Equal(t, []string{"8080:8080"}, cf.Services["api"].Ports)
	require.NotContains(t, strings.ToLower(string(raw)), "minioadmin")
	redisCmd, _ := cf.Services["redis"].Command.([]any)
	require.Contains(t, redisCmd, "--requirepass")
	// Every credential comes from .env: compose refuses to run without it.
	for _, v := range []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
		"LABELQ_S3_ACCESS_KEY", "LABELQ_S3_SECRET_KEY", "LABELQ_OPERATOR_PASSWORD"} {
		require.Contains(t, string(raw), "${"+v+":?", "%s must be required", v)
	}
	for _, k := range []string{"POSTGRES_PASSWORD"} {
		require.True(t, strings.HasPrefix(cf.Services["postgres"].Environment[k], "${"), "postgres %s is a literal", k)
	}
	for _, k := range []string{"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} {
		require.True(t, strings.HasPrefix(cf.Services["minio"].Environment[k], "${"), "minio %s is a literal", k)
	}
	example, err := os.ReadFile("../../.env.example")
	require.NoError(t, err)
	for v := range composeVars {
		if v != "LABELQ_PUBLIC_URL" && v != "OPENAI_API_KEY" {
			require.Contains(t, string(example), v+"=", ".env.example lacks %s", v)
		}
	}
}

// composeVars stand for a filled-in .env in TestDockerCompose.
var composeVars = map[string]string{
	"POSTGRES_PASSWORD": "pgsecret0123456789abcdef", "REDIS_PASSWORD": "redissecret0123456789abcdef",
	"LABELQ_API_DB_PASSWORD": "apidbsecret0123456789abcdef", "LABELQ_WORKER_DB_PASSWORD": "workerdbsecret0123456789abcdef",
	"MINIO_ROOT_USER": "root-user", "MINIO_ROOT_PASSWORD": "rootsecret0123456789abcdef",
	"LABELQ_S3_ACCESS_KEY": "labelq", "LABELQ_S3_SECRET_KEY": "s3secret0123456789abcdef",
	"LABELQ_OPERATOR_PASSWORD": "operator-secret-0123456789", "LABELQ_PUBLIC_URL": "", "OPENAI_API_KEY": "",
	"LABELQ_SECRET_KEY": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "LABELQ_STORAGE_ALLOWED_ENDPOINTS": "",
}

var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}`)

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} as compose does.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		v, ok := composeVars[g[1]]
		require.True(t, ok, "docker-compose.yml uses ${%s}, which composeVars lacks", g[1])
		if v == "" && g[2] == "-" {
			return g[3]
		}
		return v
	})
}
