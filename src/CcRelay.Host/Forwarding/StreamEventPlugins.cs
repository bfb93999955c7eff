using CcRelay.Core;
using CcRelay.Host.Plugins;

namespace CcRelay.Host.Forwarding;

/// <summary>What the plugins made of one SSE event: the frame to send, or the step that failed under <c>on_error: fail</c>.</summary>
/// <param name="Frame">The event to send (the upstream's bytes when no step changed it).</param>
/// <param name="FailedStep">The failing step's name (null: none failed).</param>
/// <param name="Reason">Why it failed, scrubbed of the relay's secrets.</param>
internal readonly record struct EventApplied(byte[] Frame, string? FailedStep, string? Reason);

/// <summary>
/// One stream's event plugins (<c>sees: [event]</c>, docs/plugins.md): each event Core gives to plugins
/// (<see cref="StreamPlugins.start"/>) goes through the steps in order, one call each, under the step's
/// <c>event_timeout_ms</c>; Core records each outcome (<see cref="StreamPlugins.record"/>). A step that failed under
/// <c>skip</c> is left out for the rest of the stream. Each step's calls go to one process of its plugin's pool, the
/// one the stream's first event is bound to (<see cref="PluginHost.OpenStream"/>): the stream's events reach it in
/// order. Dispose at the stream's end: the processes are free for other streams to bind to.
/// </summary>
internal sealed class StreamEventPlugins : IDisposable
{
    private readonly PluginHost _host;
    private readonly List<(PipelineStep Step, PluginConfig Config)> _steps;
    private readonly PluginHost.PluginStreamCalls?[] _calls;
    private readonly HashSet<string> _left = new(StringComparer.Ordinal);
    private readonly string _provider;
    private readonly string _model;
    private readonly string _stream;
    private readonly IReadOnlyList<string> _secrets;
    private long _seq;

    private StreamEventPlugins(PluginHost host, List<(PipelineStep, PluginConfig)> steps, string provider, string model, string stream, IReadOnlyList<string> secrets)
    {
        _host = host;
        _steps = steps;
        _calls = new PluginHost.PluginStreamCalls?[steps.Count];
        _provider = provider;
        _model = model;
        _stream = stream;
        _secrets = secrets;
    }

    /// <summary>The stream's event plugins; null when the attempt's pipelines give events to none.</summary>
    public static StreamEventPlugins? For(AttemptPipeline? pipeline, RelaySnapshot snapshot, string provider, string model, string stream)
    {
        if (pipeline is not { Failed: false, Host: { } host } || pipeline.Selected.Response.IsEmpty)
        {
            return null;
        }

        var steps = new List<(PipelineStep, PluginConfig)>();
        foreach (var (step, config) in StreamPlugins.eventSteps(snapshot.Config.Pipelines.Plugins, pipeline.Selected.Response))
        {
            steps.Add((step, config));
        }

        return steps.Count == 0 ? null : new StreamEventPlugins(host, steps, provider, model, stream, snapshot.Secrets);
    }

    /// <summary>Runs one complete SSE event through the steps (a client's abort throws <see cref="OperationCanceledException"/>).</summary>
    public async ValueTask<EventApplied> ApplyAsync(byte[] frame, CancellationToken cancellationToken)
    {
        if (StreamPlugins.start(frame)?.Value is not { } run)
        {
            return new EventApplied(frame, null, null); // a ping, an error, a comment: as it came
        }

        var seq = _seq++;
        for (var i = 0; i < _steps.Count; i++)
        {
            var (step, config) = _steps[i];
            if (_left.Contains(step.Name))
            {
                continue;
            }

            var calls = _calls[i] ??= _host.OpenStream(config);
            var outcome = await calls.CallAsync(PluginCall.NewEvent(_provider, _model, _stream, seq, run.Name, run.Data), cancellationToken);
            run = StreamPlugins.record(run, step, outcome);
            if (run.Failure is { } failure)
            {
                return new EventApplied(frame, failure.Value.Item1, Redact.scrub(_secrets, failure.Value.Item2));
            }
        }

        foreach (var (name, _) in run.Skipped)
        {
            _left.Add(name);
        }

        return new EventApplied(run.Frame, null, null);
    }

    /// <summary>The stream ended: its processes are free for other streams.</summary>
    public void Dispose()
    {
        foreach (var calls in _calls)
        {
            calls?.Dispose();
        }
    }
}
