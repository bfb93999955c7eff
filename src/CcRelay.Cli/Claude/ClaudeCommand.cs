using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using CcRelay.Core;

namespace CcRelay.Cli.Claude;

/// <summary>
/// <c>cc-relay claude [claude args…]</c>: Claude Code through the relay with nothing to set up. Uses the relay that
/// answers at the config's <c>server.listen</c>, or starts one in the background on a free loopback port (the
/// user's config, or the built-in passthrough); runs <c>claude</c> with <c>ANTHROPIC_BASE_URL</c> (and the relay's
/// client credential when it has client auth), every argument, the terminal and stdin passed through; returns
/// its exit code and stops the relay it started.
/// </summary>
internal static class ClaudeCommand
{
    /// <summary>The exit code when <c>claude</c> is not on <c>PATH</c>: the shell's "command not found".</summary>
    public const int ClaudeNotFound = 127;

    /// <summary>The exit code when Ctrl-C or SIGTERM arrives before Claude Code started: 128 + SIGINT, as a shell says it.</summary>
    public const int Interrupted = 130;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The command as <c>--help</c> shows it; <see cref="Program.RunAsync"/> runs it without parsing (every argument is Claude Code's).</summary>
    public static Command Create(CliEnvironment environment)
    {
        var arguments = new Argument<string[]>("claude-args") { Description = "Passed to claude unchanged.", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("claude", """
            Run Claude Code through the relay: the one answering at the config's server.listen, else one started
            for the session. Arguments, stdin, the terminal and the exit code pass through; exit 127 when claude
            is not on PATH. The config comes from $CC_RELAY_CONFIG or the usual places (docs/cli.md#claude).

            Examples:
              cc-relay claude
              cc-relay claude -p "explain this repository" --model claude-sonnet-4-6
              CC_RELAY_CONFIG=~/relay.yaml cc-relay claude -c
              cc-relay claude -- --help      # Claude Code's own help
            """)
        {
            arguments,
        };
        command.SetAction((parse, cancellationToken) =>
            RunAsync(parse.GetValue(arguments) ?? [], environment, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    /// <summary>Runs Claude Code with <paramref name="arguments"/> (after <c>claude</c> on the command line, unparsed).</summary>
    public static async Task<int> RunAsync(string[] arguments, CliEnvironment environment, TextWriter error, CancellationToken cancellationToken)
    {
        // before anything is started: is there a claude to run?
        if (BackgroundRelay.Which("claude", environment) is not { } claude)
        {
            await error.WriteLineAsync("cc-relay: claude (Claude Code) is not on PATH. Install it (npm install -g @anthropic-ai/claude-code) and run cc-relay claude again.");
            return ClaudeNotFound;
        }

        var loaded = LoadConfig.Run(null, environment, error);
        if (loaded is null)
        {
            return ExitCodes.InvalidConfig;
        }

        var (config, path, _, _) = loaded.Value;

        // Signals: while the relay starts, Ctrl-C or SIGTERM cancels the start (and stops what was started);
        // while Claude Code runs, Ctrl-C and Ctrl-\ are Claude Code's (the terminal sends them to it too) and
        // this process only waits; a SIGTERM or SIGHUP sent here is passed on, so Claude Code ends as it would
        // have, and then the relay.
        using var starting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Process? claudeProcess = null;
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            var running = Volatile.Read(ref claudeProcess);
            if (running is null)
            {
                starting.Cancel();
            }
            else if (context.Signal is PosixSignal.SIGTERM or PosixSignal.SIGHUP && !running.HasExited)
            {
                _ = Signals.Send(running.Id, context.Signal == PosixSignal.SIGHUP ? Signals.Sighup : Signals.Sigterm);
            }
        }

        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);

        BackgroundRelay? started = null;
        Uri url;
        var configured = ClaudeSettings.clientUrl(config.Server.Listen);
        try
        {
            if (configured.IsOk && await RelayProbe.IsRelayAsync(new Uri(configured.ResultValue), TimeSpan.FromSeconds(2), starting.Token))
            {
                url = new Uri(configured.ResultValue);
                await error.WriteLineAsync($"cc-relay: Claude Code uses the relay at {url.GetLeftPart(UriPartial.Authority)}");
            }
            else
            {
                started = await BackgroundRelay.StartAsync(path, environment, StartTimeout, starting.Token);
                url = started.Url;
                await error.WriteLineAsync($"cc-relay: started a relay at {url.GetLeftPart(UriPartial.Authority)} ({(path is null ? "built-in Anthropic passthrough" : path)}); it stops when Claude Code exits");
            }
        }
        catch (InvalidOperationException e)
        {
            await error.WriteLineAsync($"cc-relay: could not start a relay: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException) when (starting.IsCancellationRequested)
        {
            await error.WriteLineAsync("cc-relay: interrupted before Claude Code started");
            return Interrupted;
        }

        try
        {
            using var process = StartClaude(claude, arguments, url, config.Server.Auth, environment);
            Volatile.Write(ref claudeProcess, process);
            await process.WaitForExitAsync(CancellationToken.None);
            return process.ExitCode;
        }
        finally
        {
            if (started is not null)
            {
                await started.DisposeAsync();
            }
        }
    }

    private static Process StartClaude(string claude, string[] arguments, Uri url, AuthSettings auth, CliEnvironment environment)
    {
        var start = new ProcessStartInfo(claude) { UseShellExecute = false, WorkingDirectory = environment.WorkingDirectory };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["ANTHROPIC_BASE_URL"] = url.GetLeftPart(UriPartial.Authority);

        // the relay's client credential: an api_key goes as x-api-key (ANTHROPIC_API_KEY), a bearer secret as
        // Authorization: Bearer (ANTHROPIC_AUTH_TOKEN); without client auth Claude Code sends its own credential
        if (auth.ApiKey?.Value is { Length: > 0 } apiKey)
        {
            start.Environment["ANTHROPIC_API_KEY"] = apiKey;
        }
        else if (auth.AllowBearer && auth.BearerSecret?.Value is { Length: > 0 } bearer)
        {
            start.Environment["ANTHROPIC_AUTH_TOKEN"] = bearer;
        }

        return Process.Start(start) ?? throw new InvalidOperationException("claude did not start");
    }
}
