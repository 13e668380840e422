// Command gateway runs Canopy's API gateway as its own process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/gateway"
)

func main() { os.Exit(run()) }

type fileConfig struct {
	Gateway gateway.Config `yaml:"gateway"`
	Log     obs.LogConfig  `yaml:"log"`
}

func run() int {
	configFile := flag.String("config", "", "YAML configuration file")
	flag.Parse()
	var cfg fileConfig
	if err := config.Load(&cfg, config.Options{File: *configFile}); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 2
	}
	if cfg.Gateway.Store.Database == "" {
		cfg.Gateway.Store.Database = gateway.DefaultDatabase
	}
	logger := obs.NewLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	db, err := store.Open(ctx, cfg.Gateway.Store, logger)
	if err != nil {
		logger.Error("open database", "err", err)
		return 1
	}
	defer db.Close()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Gateway.RedisAddr, PoolSize: 64, MinIdleConns: 4,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer rdb.Close()

	svc, err := gateway.New(cfg.Gateway, gateway.Deps{Logger: logger, Registry: obs.NewRegistry(), DB: db, Redis: rdb, Stdout: os.Stdout})
	if err != nil {
		logger.Error("build gateway", "err", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}
