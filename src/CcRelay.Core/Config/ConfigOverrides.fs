namespace CcRelay.Core

/// Command-line settings that win over the config file (`serve --listen/--log-level/--log-format`).
/// They are applied to the loaded config and again to every reloaded one, so a reload never drops them.
type ConfigOverrides = {
    Listen: ListenAddress option
    Level: LogLevel option
    Format: LogFormat option
}

/// Applying command-line overrides.
[<RequireQualifiedAccess>]
module ConfigOverrides =

    /// No overrides.
    let none: ConfigOverrides = {
        Listen = None
        Level = None
        Format = None
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
    }
