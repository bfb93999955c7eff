module CcRelay.Core.Tests.ConfigDiffTests

open System
open Xunit
open CcRelay.Core

let private provider name =
    Config.defaultProvider name ProviderType.AnthropicCompatible (Uri $"http://%s{name}.test")

let private config providers = {
    Config.defaults with
        Providers = providers
}

[<Fact>]
let ``identical configs have no changes`` () =
    let c = config [ provider "a" ]
    Assert.Empty(ConfigDiff.between c c)
    Assert.Equal("no changes", ConfigDiff.describe [])

[<Fact>]
let ``providers added, removed and changed are named with the changed fields`` () =
    let before = config [ provider "a"; provider "b" ]

    let after =
        config [
            {
                provider "a" with
                    Keys = [
                        {
                            Key = "k"
                            RpmLimit = 0
                            ItpmLimit = 0
                            OtpmLimit = 0
                            TpmLimit = 0
                            Priority = 0
                            Weight = 1
                            Aws = None
                        }
                    ]
                    BaseUrl = Uri "http://elsewhere.test"
            }
            provider "c"
        ]

    let changes = ConfigDiff.between before after

    Assert.Equal<ConfigChange list>(
        [
            ConfigChange.ProviderRemoved "b"
            ConfigChange.ProviderChanged("a", [ "base_url"; "keys" ])
            ConfigChange.ProviderAdded "c"
        ],
        changes
    )

    Assert.Equal(
        "providers added: c; providers removed: b; providers changed: a (base_url, keys)",
        ConfigDiff.describe changes
    )

[<Fact>]
let ``listen and http2 need a restart, and the applied config keeps their running values`` () =
    let before = config [ provider "a" ]

    let after = {
        before with
            Server = {
                before.Server with
                    Listen = { Host = "0.0.0.0"; Port = 9999 }
                    EnableHttp2 = true
                    MaxBodyBytes = 10L
            }
    }

    let changes = ConfigDiff.between before after

    Assert.Equal<ConfigChange list>(
        [
            ConfigChange.RestartRequired "server.listen"
            ConfigChange.RestartRequired "server.enable_http2"
            ConfigChange.SettingChanged "server.max_body_bytes"
        ],
        changes
    )

    let applied = ConfigDiff.applicable before after
    Assert.Equal(before.Server.Listen, applied.Server.Listen)
    Assert.False applied.Server.EnableHttp2
    Assert.Equal(10L, applied.Server.MaxBodyBytes)

[<Fact>]
let ``logging changes are live settings`` () =
    let before = config [ provider "a" ]

    let after = {
        before with
            Logging = {
                before.Logging with
                    Level = LogLevel.Debug
                    Format = LogFormat.Json
            }
    }

    Assert.Equal<ConfigChange list>(
        [
            ConfigChange.SettingChanged "logging.level"
            ConfigChange.SettingChanged "logging.format"
        ],
        ConfigDiff.between before after
    )

[<Fact>]
let ``command-line overrides win over the file and leave the rest alone`` () =
    let overrides = {
        Listen = Some { Host = "127.0.0.1"; Port = 1234 }
        Level = Some LogLevel.Warn
        Format = None
        Grpc = None
    }

    let applied = ConfigOverrides.apply overrides Config.defaults

    Assert.Equal(1234, applied.Server.Listen.Port)
    Assert.Equal(LogLevel.Warn, applied.Logging.Level)
    Assert.Equal(Config.defaults.Logging.Format, applied.Logging.Format)
    Assert.Equal(Config.defaults.Grpc, applied.Grpc)
    Assert.Equal<ProviderConfig list>(Config.defaults.Providers, applied.Providers)
    Assert.Equal(Config.defaults, ConfigOverrides.apply ConfigOverrides.none Config.defaults)

[<Fact>]
let ``metrics and otel exporter settings need a restart; the model-label limit and propagation apply live`` () =
    let before = config [ provider "a" ]

    let after = {
        before with
            Metrics = {
                before.Metrics with
                    Path = "/prom"
                    MaxModelLabels = 7
            }
            Otel = {
                before.Otel with
                    Enabled = true
                    PropagateTraceContext = true
            }
            Logging = {
                before.Logging with
                    DebugOptions = {
                        before.Logging.DebugOptions with
                            LogRequestBody = true
                    }
            }
    }

    let changes = ConfigDiff.between before after

    Assert.Equal<ConfigChange list>(
        [
            ConfigChange.RestartRequired "metrics.path"
            ConfigChange.RestartRequired "otel.enabled"
            ConfigChange.SettingChanged "logging.debug_options"
            ConfigChange.SettingChanged "metrics.max_model_labels"
            ConfigChange.SettingChanged "otel.propagate_trace_context"
        ],
        changes
    )

    let applied = ConfigDiff.applicable before after
    Assert.Equal("/metrics", applied.Metrics.Path)
    Assert.Equal(7, applied.Metrics.MaxModelLabels)
    Assert.False applied.Otel.Enabled
    Assert.True applied.Otel.PropagateTraceContext
    Assert.True applied.Logging.DebugOptions.LogRequestBody

[<Fact>]
let ``a change of a cloud provider's region is named as its cloud settings`` () =
    let bedrock (region: string) = {
        Config.defaultProvider "b" ProviderType.Bedrock (Uri "https://bedrock.test") with
            Cloud =
                CloudSettings.Bedrock {
                    Region = region
                    Credentials = AwsCredentialSource.Chain
                    Api = BedrockApi.Invoke
                    Betas = []
                }
    }

    Assert.Equal<ConfigChange list>(
        [ ConfigChange.ProviderChanged("b", [ "cloud settings" ]) ],
        ConfigDiff.between (config [ bedrock "us-east-1" ]) (config [ bedrock "eu-west-1" ])
    )

[<Fact>]
let ``a reload applies changes when any takes effect now; restart-only changes alone apply nothing`` () =
    let running = config [ provider "a" ]

    let grpcOnly = {
        running with
            Grpc = {
                running.Grpc with
                    Enabled = true
                    Listen = { Host = "127.0.0.1"; Port = 9999 }
            }
    }

    let grpcAndProvider = {
        grpcOnly with
            Providers = [ provider "a"; provider "b" ]
    }

    Assert.Equal(ReloadEffect.Unchanged, ConfigDiff.effect (ConfigDiff.between running running))
    let restartOnly = ConfigDiff.between running grpcOnly
    Assert.Equal(ReloadEffect.RestartRequired, ConfigDiff.effect restartOnly)
    Assert.Contains(ConfigChange.RestartRequired "grpc.listen", restartOnly)
    Assert.Equal("restart required for: grpc.enabled, grpc.listen", ConfigDiff.describe restartOnly)
    // applied, the running grpc section stays, and the restart is still reported beside the live change
    let mixed = ConfigDiff.between running grpcAndProvider
    Assert.Equal(ReloadEffect.Apply, ConfigDiff.effect mixed)
    Assert.Contains(ConfigChange.RestartRequired "grpc.enabled", mixed)
    Assert.Equal(running.Grpc, (ConfigDiff.applicable running grpcAndProvider).Grpc)
