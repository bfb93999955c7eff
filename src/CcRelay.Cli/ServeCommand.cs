using System.CommandLine;
using System.Security.Cryptography;
using CcRelay.Cli.Tui;
using CcRelay.Core;
using CcRelay.Host;
using CcRelay.Host.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace CcRelay.Cli;

/// <summary><c>cc-relay serve</c>: find and load the config, apply flags, run until SIGINT/SIGTERM.</summary>
internal static class ServeCommand
{
    private static readonly Option<string?> ConfigOption = new("--config", "-c")
    {
        Description = "Config file (.yaml, .yml, .toml). Default: $CC_RELAY_CONFIG, ./cc-relay.{yaml,yml,toml}, ~/.config/cc-relay/config.{yaml,yml,toml}, else built-in Anthropic passthrough.",
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

    private static readonly Option<bool> TuiOption = new("--tui")
    {
        Description = "Show the live dashboard (cc-relay tui) in this terminal while the relay runs. Console logs are off meanwhile (a logging.output file still gets them); quitting the dashboard (q) stops the relay. Without an enabled grpc section the dashboard gets a loopback port and a one-run token of its own.",
    };

    public static Command Create(CliEnvironment environment)
    {
        LogLevelOption.AcceptOnlyFromAmong("debug", "info", "warn", "error");
        LogFormatOption.AcceptOnlyFromAmong("json", "text");
        var command = new Command("serve", "Run the relay (Anthropic passthrough on 127.0.0.1:8787 when no config exists).")
        {
            ConfigOption,
            ListenOption,
            LogLevelOption,
            LogFormatOption,
            TuiOption,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse, environment, cancellationToken));
        return command.WithExamples(
            "cc-relay serve",
            "cc-relay serve --config ./cc-relay.yaml --log-level debug",
            "cc-relay serve --listen 127.0.0.1:9000 --log-format json");
    }

    private static async Task<int> RunAsync(ParseResult parse, CliEnvironment environment, CancellationToken cancellationToken)
    {
        var error = parse.InvocationConfiguration.Error;
        var loaded = LoadConfig.Run(parse.GetValue(ConfigOption), environment, error);
        if (loaded is null)
        {
            return ExitCodes.InvalidConfig;
        }

        var (config, path, source, warnings) = loaded.Value;
        if (ParseOverrides(parse, error) is not { } overrides)
        {
            return ExitCodes.InvalidConfig;
        }

        var tui = parse.GetValue(TuiOption);
        if (tui && (Console.IsInputRedirected || Console.IsOutputRedirected))
        {
            await error.WriteLineAsync("cc-relay: --tui needs a terminal (stdin and stdout must not be redirected)");
            return ExitCodes.InvalidConfig;
        }

        if (tui && !overrides.Apply(config).Grpc.Enabled)
        {
            // NOTE: the dashboard reads the relay through the management API, as `cc-relay tui` does; without one in
            // the config it gets its own on a free loopback port, with a token only this process knows.
            var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
            overrides = overrides.WithGrpc(GrpcConfig.Create(true, new ListenAddress("127.0.0.1", 0), token));
        }

        var overridden = overrides.Apply(config);

        // disposed on the way out: disposing the services is what drains the accounting thread and flushes the usage
        // ledger, so a request that ended during the shutdown keeps its row
        await using var app = CcRelayServer.Build(overridden, new CcRelayServerOptions
        {
            ConfigSource = source,
            ConfigPath = path,
            Overrides = overrides,
            // the relay is this process: the garbage of a burst goes back to the system once it goes quiet
            ReturnIdleMemory = true,
            // while the dashboard owns the terminal no log line may be written to it
            ConfigureLogging = tui ? logging => logging.AddFilter<ConsoleLoggerProvider>(_ => false) : null,
        });
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay");
        var secrets = app.Services.GetRequiredService<RelayState>().Current.Secrets;
        foreach (var warning in warnings)
        {
            Log.ConfigWarning(logger, Redact.issue(secrets, warning));
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

        if (tui)
        {
            return await RunWithDashboardAsync(app, overridden.Grpc, cancellationToken);
        }

        await app.WaitForShutdownAsync(CancellationToken.None);
        return ExitCodes.Success;
    }

    /// <summary>
    /// <c>--tui</c>: the dashboard on the relay's own management listener until the operator quits it (then the relay
    /// stops) or the relay shuts down (SIGTERM; then the dashboard closes and the terminal is restored).
    /// </summary>
    private static async Task<int> RunWithDashboardAsync(Microsoft.AspNetCore.Builder.WebApplication app, GrpcConfig grpc, CancellationToken cancellationToken)
    {
        // the management listener is added last (CcRelayServer.Build), and with port 0 only the server knows its port
        var address = Api.RelayTarget.ParseAddress(CcRelayServer.Addresses(app)[^1].Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal))!;
        var target = new Api.RelayTarget(address, grpc.AuthToken?.Value, null, true);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var dashboard = TuiApp.RunAsync(target, stop.Token);
        var shutdown = app.WaitForShutdownAsync(CancellationToken.None);
        await Task.WhenAny(dashboard, shutdown);
        await stop.CancelAsync();
        await dashboard;
        await app.StopAsync(CancellationToken.None);
        await shutdown;
        return ExitCodes.Success;
    }

    /// <summary>The command-line overrides, or null after printing why a flag is invalid.</summary>
    private static ConfigOverrides? ParseOverrides(ParseResult parse, TextWriter error)
    {
        var overrides = ConfigOverrides.None;
        if (parse.GetValue(ListenOption) is { } listenText)
        {
            var parsed = ListenAddress.TryParse(listenText);
            if (parsed.IsError)
            {
                error.WriteLine($"cc-relay: --listen: {parsed.ErrorValue}");
                return null;
            }

            overrides = overrides.WithListen(parsed.ResultValue);
        }

        var level = parse.GetValue(LogLevelOption) switch
        {
            "debug" => Core.LogLevel.Debug,
            "info" => Core.LogLevel.Info,
            "warn" => Core.LogLevel.Warn,
            "error" => Core.LogLevel.Error,
            _ => null,
        };
        if (level is not null)
        {
            overrides = overrides.WithLevel(level);
        }

        var format = parse.GetValue(LogFormatOption) switch
        {
            "json" => LogFormat.Json,
            "text" => LogFormat.Text,
            _ => null,
        };
        if (format is not null)
        {
            overrides = overrides.WithFormat(format);
        }

        return overrides;
    }
}
