using CcRelay.Cli.Api;
using Grpc.Core;
using Terminal.Gui.App;
using Terminal.Gui.Views;

namespace CcRelay.Cli.Tui;

/// <summary>
/// Runs the dashboard: the terminal (Terminal.Gui, on a thread of its own), the relay's streams
/// (<see cref="DashboardFeed"/>, over the CLI's <see cref="RelayClient"/>) and the actions the keys ask for. Returns when the operator quits or
/// <c>cancellationToken</c> fires.
/// </summary>
internal static class TuiApp
{
    /// <summary>How often the terminal looks for a changed state (and ticks countdowns).</summary>
    private static readonly TimeSpan Refresh = TimeSpan.FromMilliseconds(200);

    /// <summary>Main-loop iterations a second at most: keys are answered within 100 ms.</summary>
    private const int MaxIterationsPerSecond = 10;

    public static async Task RunAsync(RelayTarget target, CancellationToken cancellationToken)
    {
        var time = TimeProvider.System;
        var store = new DashboardStore(new DashboardState { Target = target.Display });
        using var client = target.Connect(time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watching = new DashboardFeed(client, time).WatchAsync(store, stop.Token);
        var ui = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                RunTerminal(store, client, time, stop);
                ui.TrySetResult();
            }
            catch (Exception e)
            {
                ui.TrySetException(e);
            }
        })
        {
            Name = "cc-relay tui",
            IsBackground = true,
        };
        thread.Start();
        try
        {
            await ui.Task;
        }
        finally
        {
            await stop.CancelAsync();
            await watching;
        }
    }

    private static void RunTerminal(DashboardStore store, RelayClient client, TimeProvider time, CancellationTokenSource stop)
    {
        // the main loop's rate cap (Terminal.Gui's default is 25 a second): the dashboard changes at most a few
        // times a second, and every iteration costs CPU, which under `serve --tui` is the relay's
        Application.MaximumIterationsPerSecond = MaxIterationsPerSecond;
        using var app = Application.Create();
        app.Init();
        if (app.Driver is { } driver)
        {
            // the 16 ANSI colours: every terminal, tmux/screen and SSH session shows them the same
            driver.Force16Colors = true;
        }

        // every action has a key; mouse events are ignored (the terminal still reports them: Shift selects text)
        app.Mouse.IsMouseDisabled = true;
        using var top = new Runnable();
        var view = new DashboardView(store, time, action => Act(action, store, client, time, app, stop.Token));
        top.Add(view);
        view.SetFocus();
        var drawn = -1L;
        var lastTick = time.GetUtcNow();
        app.AddTimeout(Refresh, () =>
        {
            var now = time.GetUtcNow();
            if (store.Version != drawn || now - lastTick >= TimeSpan.FromSeconds(1))
            {
                drawn = store.Version;
                lastTick = now;
                view.SetNeedsDraw();
            }

            return true;
        });
        using var registration = stop.Token.Register(() => app.Invoke(() => app.RequestStop()));
        app.Run(top);
    }

    /// <summary>A key's action: view changes through the pure transition; enable, disable and reload call the relay.</summary>
    private static void Act(TuiAction action, DashboardStore store, RelayClient client, TimeProvider time, IApplication app, CancellationToken cancellationToken)
    {
        var state = store.Current;
        var selected = state.SelectedProvider;
        switch (action)
        {
            case TuiAction.Quit:
                app.RequestStop();
                return;
            case TuiAction.Enable or TuiAction.Disable or TuiAction.Toggle when state.Overlay is null && selected is not null:
                var enable = action == TuiAction.Enable || (action == TuiAction.Toggle && selected.OperatorDisabled);
                _ = SetEnabledAsync(selected.Name, enable, store, client, time, cancellationToken);
                break;
            case TuiAction.Reload when state.Overlay is null:
                store.Update(s => s.Say("reloading the config…", Tone.Accent, time.GetUtcNow()));
                _ = ReloadAsync(store, client, time, cancellationToken);
                break;
            default:
                store.Update(s => s.Apply(action));
                break;
        }
    }

    private static async Task SetEnabledAsync(string provider, bool enable, DashboardStore store, RelayClient client, TimeProvider time, CancellationToken cancellationToken)
    {
        try
        {
            var answer = await client.SetProviderEnabledAsync(provider, enable, cancellationToken);
            var text = !answer.Changed ? $"{provider} already {(enable ? "enabled" : "disabled")}"
                : enable ? $"{provider} enabled: its circuit starts closed"
                : $"{provider} disabled: no request goes to it (e enables it)";
            store.Update(s => s.WithProvider(answer.Provider).Say(text, enable ? Tone.Good : Tone.Warn, time.GetUtcNow()));
        }
        catch (RpcException e)
        {
            store.Update(s => s.Say($"{(enable ? "enable" : "disable")} {provider}: {Refusal(e)}", Tone.Bad, time.GetUtcNow()));
        }
        catch (OperationCanceledException)
        {
            // quitting
        }
    }

    private static async Task ReloadAsync(DashboardStore store, RelayClient client, TimeProvider time, CancellationToken cancellationToken)
    {
        try
        {
            var answer = await client.ReloadConfigAsync(cancellationToken);
            var tone = answer.Outcome switch { "applied" => Tone.Good, "unchanged" or "restart_required" => Tone.Normal, _ => Tone.Bad };
            store.Update(s => (s with { Overlay = new Overlay.Reload(answer) }).Say($"config reload: {answer.Outcome}", tone, time.GetUtcNow()));
        }
        catch (RpcException e)
        {
            store.Update(s => s.Say($"config reload: {Refusal(e)}", Tone.Bad, time.GetUtcNow()));
        }
        catch (OperationCanceledException)
        {
            // quitting
        }
    }

    private static string Refusal(RpcException e) => e.StatusCode switch
    {
        StatusCode.FailedPrecondition or StatusCode.NotFound or StatusCode.InvalidArgument => e.Status.Detail,
        _ => RelayClient.Describe(e),
    };
}
