namespace CcRelay.Core

/// Command-line settings that win over the config file (`serve --listen/--log-level/--log-format`, and the
/// management API `serve --tui` turns on for its dashboard when the config has none).
/// They are applied to the loaded config and again to every reloaded one, so a reload never drops them.
type ConfigOverrides = {
    Listen: ListenAddress option
    Level: LogLevel option
    Format: LogFormat option
    /// Replaces the `grpc` section (`serve --tui` without an enabled one: a loopback port and a one-run token).
    Grpc: GrpcConfig option
}

/// Applying command-line overrides.
[<RequireQualifiedAccess>]
module ConfigOverrides =

    /// No overrides.
    let none: ConfigOverrides = {
        Listen = None
        Level = None
        Format = None
        Grpc = None
    }

    /// The config with every given override applied.
    let apply (overrides: ConfigOverrides) (config: RelayConfig) : RelayConfig = {
        config with
            Server = {
                config.Server with
                    Listen = defaultArg overrides.Listen config.Server.Listen
            }
            Logging = {
                config.Logging with
                    Level = defaultArg overrides.Level config.Logging.Level
                    Format = defaultArg overrides.Format config.Logging.Format
            }
            Grpc = defaultArg overrides.Grpc config.Grpc
    }

/// The C#-facing surface: the CLI builds overrides from its flags, the host applies them.
type ConfigOverrides with

    /// No overrides (`ConfigOverrides.none`).
    static member None: ConfigOverrides = ConfigOverrides.none

    /// These overrides with `--listen` set.
    member this.WithListen(listen: ListenAddress) : ConfigOverrides = { this with Listen = Some listen }

    /// These overrides with `--log-level` set.
    member this.WithLevel(level: LogLevel) : ConfigOverrides = { this with Level = Some level }

    /// These overrides with `--log-format` set.
    member this.WithFormat(format: LogFormat) : ConfigOverrides = { this with Format = Some format }

    /// These overrides with the `grpc` section replaced (`serve --tui`).
    member this.WithGrpc(grpc: GrpcConfig) : ConfigOverrides = { this with Grpc = Some grpc }

    /// The config with these overrides applied (`ConfigOverrides.apply`).
    member this.Apply(config: RelayConfig) : RelayConfig = ConfigOverrides.apply this config
