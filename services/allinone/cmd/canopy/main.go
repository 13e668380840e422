// Command canopy runs the whole Canopy platform in one process (all-in-one
// mode) on the embedded defaults. Each service also has its own binary.
// `canopy broker` runs only the embedded Kafka-protocol broker (split mode),
// `canopy reset` returns the machine to a clean slate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/services/allinone"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "reset" {
		return runReset(os.Args[2:])
	}
	if len(os.Args) > 1 && os.Args[1] == "broker" {
		return runBroker(os.Args[2:])
	}
	var cfg allinone.Config
	if err := config.FromArgs(&cfg, "canopy", os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "canopy:", err)
		return 2
	}
	var logCfg obs.LogConfig
	traceCfg := obs.TraceConfig{ServiceName: "canopy"}
	if err := config.Load(&logCfg, config.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "canopy:", err)
		return 2
	}
	if err := config.Load(&traceCfg, config.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "canopy:", err)
		return 2
	}
	logger := obs.NewLogger(logCfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := obs.SetupTracing(ctx, traceCfg)
	if err != nil {
		logger.Error("tracing", "err", err)
		return 1
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	p, err := allinone.New(cfg, allinone.Deps{Logger: logger, Registry: obs.NewRegistry(), Stdout: os.Stdout})
	if err != nil {
		logger.Error("canopy", "err", err)
		return 2
	}
	if err := p.Run(ctx); err != nil {
		logger.Error("canopy stopped with an error", "err", err)
		return 1
	}
	return 0
}

// runReset is `canopy reset [-force]`: it stops the platform and every node
// process of the configured state directory, drops the configured
// databases and removes the state directory, after the operator types
// "reset" (docs/operations.md, "Reset").
func runReset(args []string) int {
	fs := flag.NewFlagSet("canopy reset", flag.ContinueOnError)
	force := fs.Bool("force", false, "do not ask for confirmation")
	configFile := fs.String("config", os.Getenv(config.DefaultPrefix+"CONFIG"), "YAML config `file` (env "+config.DefaultPrefix+"CONFIG); env vars override it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var cfg allinone.Config
	if err := config.Load(&cfg, config.Options{File: *configFile}); err != nil {
		fmt.Fprintln(os.Stderr, "canopy reset:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := allinone.Reset(ctx, cfg, allinone.ResetOptions{Force: *force}, os.Stdin, os.Stdout)
	if errors.Is(err, allinone.ErrResetNotConfirmed) {
		return 1
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "canopy reset:", err)
		return 1
	}
	return 0
}

// runBroker is `canopy broker`: the embedded Kafka-protocol broker alone, on
// CANOPY_EMBEDDED_KAFKA_ADDR (127.0.0.1:9092) with its data under
// CANOPY_STATE_DIR, until SIGINT or SIGTERM; split mode starts the services'
// own binaries against it (docs/operations.md, "Split mode").
func runBroker(args []string) int {
	var cfg allinone.Config
	if err := config.FromArgs(&cfg, "canopy broker", args, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "canopy broker:", err)
		return 2
	}
	var logCfg obs.LogConfig
	if err := config.Load(&logCfg, config.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "canopy broker:", err)
		return 2
	}
	logger := obs.NewLogger(logCfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := allinone.RunBroker(ctx, cfg, logger, nil); err != nil {
		logger.Error("canopy broker", "err", err)
		return 1
	}
	return 0
}
