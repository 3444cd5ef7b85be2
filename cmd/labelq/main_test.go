package main

import (
	"bytes"
	"net"
	"os"
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

	for _, name := range []string{"postgres", "redis", "minio", "createbucket", "asynqmon", "migrate", "api", "worker", "scheduler", "relay"} {
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
			env[k] = strings.ReplaceAll(v, "${OPENAI_API_KEY:-}", "")
		}
		cfg, err := config.Load(func(k string) string { return env[k] })
		require.NoError(t, err, "%s's environment does not load", svc)

		require.Contains(t, cfg.DatabaseURL, "@postgres:5432/")
		require.Contains(t, published("postgres"), "5432")
		require.Equal(t, "redis://redis:6379/0", cfg.RedisURL)
		require.Contains(t, published("redis"), "6379")
		host, port, err := net.SplitHostPort(cfg.S3Endpoint)
		require.NoError(t, err)
		require.Equal(t, "minio", host)
		require.Contains(t, published("minio"), port)
		require.Contains(t, string(raw), "local/"+cfg.S3Bucket, "createbucket makes the configured bucket")
		require.Equal(t, cf.Services["minio"].Environment["MINIO_ROOT_USER"], cfg.S3AccessKey)
		require.Equal(t, cf.Services["minio"].Environment["MINIO_ROOT_PASSWORD"], cfg.S3SecretKey)
		if svc == "api" {
			_, httpPort, err := net.SplitHostPort(cfg.HTTPAddr)
			require.NoError(t, err)
			require.Contains(t, published("api"), httpPort)
			require.NotEmpty(t, cfg.OperatorPassword, "the API's /monitoring needs an operator password")
		}
	}
	require.Equal(t, "service_completed_successfully", cf.Services["api"].DependsOn["migrate"].Condition)
}
