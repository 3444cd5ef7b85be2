package app

import (
	"net/http"

	"github.com/hibiken/asynq"
)

// handlers maps each task type to its handler. Worker packages are added here as
// they are built.
func (a *App) handlers() map[string]asynq.Handler {
	return map[string]asynq.Handler{}
}

// periodicTasks lists the scheduler's periodic tasks.
func (a *App) periodicTasks() asynq.PeriodicTaskConfigProvider {
	return periodicFunc(func() ([]*asynq.PeriodicTaskConfig, error) { return nil, nil })
}

type periodicFunc func() ([]*asynq.PeriodicTaskConfig, error)

func (f periodicFunc) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) { return f() }

// mountAPI mounts the /v1 API.
func (a *App) mountAPI(mux *http.ServeMux) {}
