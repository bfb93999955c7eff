using System.CommandLine;
using CcRelay.Core;
using CcRelay.Host;
using CcRelay.Host.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Cli;

/// <summary><c>cc-relay serve</c>: find and load the config, apply flags, run until SIGINT/SIGTERM.</summary>
internal static class ServeCommand
{
    private static readonly Option<string?> ConfigOption = new("--config", "-c")
    {
        Description = "Config file (.yaml, .yml). Default: $CC_RELAY_CONFIG, ./cc-relay.yaml, ~/.config/cc-relay/config.yaml, else built-in Anthropic passthrough.",
    };

    private static readonly Option<string?> ListenOption = new("--listen")
    {
        Description = "Listen address host:port, overriding server.listen (default 127.0.0.1:8787).",
    };

    private static readonly Option<string?> LogLevelOption = new("--log-level")
    {
        Description = "Log level, overriding logging.level.",
    };

    private static readonly Option<string?> LogFormatOption = new("--log-format")
    {
        Description = "Log format, overriding logging.format.",
    };

    public static Command Create()
    {
        LogLevelOption.AcceptOnlyFromAmong("debug", "info", "warn", "error");
        LogFormatOption.AcceptOnlyFromAmong("json", "text");
        var command = new Command("serve", "Run the relay (Anthropic passthrough on 127.0.0.1:8787 when no config exists).")
        {
            ConfigOption,
            ListenOption,
            LogLevelOption,
            LogFormatOption,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        var error = parse.InvocationConfiguration.Error;
        var loaded = LoadConfig.Run(parse.GetValue(ConfigOption), error);
        if (loaded is null)
        {
            return ExitCodes.InvalidConfig;
        }

        var (config, source, warnings) = loaded.Value;
        var overridden = ApplyFlags(config, parse, error);
        if (overridden is null)
        {
            return ExitCodes.InvalidConfig;
        }

        var app = CcRelayServer.Build(overridden, new CcRelayServerOptions { ConfigSource = source });
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay");
        foreach (var warning in warnings)
        {
            Log.ConfigWarning(logger, warning.ToString());
        }

        var enabled = overridden.Providers.Where(p => p.Enabled).Select(p => p.Name).ToArray();
        Log.ConfigLoaded(logger, source ?? "built-in default (Anthropic passthrough)", enabled.Length, string.Join(", ", enabled));

        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            await error.WriteLineAsync($"cc-relay: cannot listen on {overridden.Server.Listen}: {e.Message}");
            return ExitCodes.Failure;
        }

        var auth = Core.Auth.isOpen(Core.Auth.compile(overridden.Server.Auth)) ? "open" : "required";
        Log.Listening(logger, RelayInfo.Version, string.Join(", ", CcRelayServer.Addresses(app)), auth);

        await app.WaitForShutdownAsync(CancellationToken.None);
        return ExitCodes.Success;
    }

    private static RelayConfig? ApplyFlags(RelayConfig config, ParseResult parse, TextWriter error)
    {
        var server = config.Server;
        var logging = config.Logging;

        if (parse.GetValue(ListenOption) is { } listenText)
        {
            var listen = ListenAddress.TryParse(listenText);
            if (listen.IsError)
            {
                error.WriteLine($"cc-relay: --listen: {listen.ErrorValue}");
                return null;
            }

            server = new ServerConfig(listen.ResultValue, server.Auth, server.TimeoutMs, server.MaxConcurrent, server.MaxBodyBytes, server.EnableHttp2, server.FirstByteTimeoutMs, server.ShutdownTimeoutMs);
        }

        var level = parse.GetValue(LogLevelOption) switch
        {
            "debug" => Core.LogLevel.Debug,
            "info" => Core.LogLevel.Info,
            "warn" => Core.LogLevel.Warn,
            "error" => Core.LogLevel.Error,
            _ => logging.Level,
        };
        var format = parse.GetValue(LogFormatOption) switch
        {
            "json" => LogFormat.Json,
            "text" => LogFormat.Text,
            _ => logging.Format,
        };

        return new RelayConfig(server, config.Providers, new LoggingConfig(level, format, logging.Output), config.Routing, config.Health);
    }
}
