using CcRelay.Core;
using CcRelay.Host.Plugins;

namespace CcRelay.Host.Forwarding;

/// <summary>What an attempt's pipeline did: the report for the debug header and the log, and its answer-side steps.</summary>
/// <param name="Report">The steps as <see cref="Pipeline.report"/> writes them.</param>
/// <param name="Skipped">The reasons of skipped steps (already scrubbed of secrets).</param>
/// <param name="Selected">The attempt's pipelines (their answer-side steps run on the answer).</param>
/// <param name="Failed">The pipeline failed: the attempt's answer is the relay's own error.</param>
internal sealed record AttemptPipeline(string Report, string Skipped, SelectedPipeline Selected, bool Failed)
{
    /// <summary>The plugins, for the answer side's plugin steps (null: none configured).</summary>
    public PluginHost? Host { get; init; }

    /// <summary>Whether the answer side repairs streamed tool JSON.</summary>
    public bool RepairsToolJson => Selected.Response.Any(s => s.Transform.IsRepairToolJson);
}

/// <summary>
/// Runs the Anthropic-phase steps of a pipeline: built-in steps in Core, plugin steps through the
/// <see cref="PluginHost"/>, each outcome recorded by <see cref="Pipeline.record"/> under the step's <c>on_error</c>.
/// A plugin's body must still be a valid request (<see cref="RequestFacts.Inspect(System.ReadOnlySpan{byte})"/>), else its step failed.
/// </summary>
internal static class PipelineRunner
{
    public static async Task<PipelineRun> RunAnthropicAsync(
        SelectedPipeline selected,
        RelaySnapshot snapshot,
        PluginHost? plugins,
        ProviderConfig provider,
        string model,
        byte[] body,
        CancellationToken cancellationToken)
    {
        var dialect = Pipeline.dialect(provider);
        var run = Pipeline.start(body);
        var builtIn = new List<PipelineStep>();
        foreach (var step in selected.Anthropic)
        {
            if (run.Failure is not null)
            {
                break;
            }

            if (step.Transform is not Transform.Plugin plugin)
            {
                // consecutive built-in steps run together (fused into one scan where that is exact)
                builtIn.Add(step);
                continue;
            }

            run = RunBuiltIn(builtIn, dialect, run);
            if (run.Failure is not null)
            {
                break;
            }

            var config = snapshot.Config.Pipelines.Plugins.FirstOrDefault(p => p.Name == plugin.Name);
            StepOutcome outcome;
            try
            {
                outcome = config is null || plugins is null
                    ? StepOutcome.NewFailed("the plugin is not configured")
                    : await plugins.CallAsync(config, provider.Name, model, run.Body, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // the client left mid-call: the attempt that follows sees the abort and ends as abandoned
                outcome = StepOutcome.NewFailed("the client left during the plugin call");
            }

            if (outcome is StepOutcome.Changed changed && RequestFacts.Inspect(changed.Body) is { IsError: true } invalid)
            {
                outcome = StepOutcome.NewFailed("the plugin's body is not a valid request: " + invalid.ErrorValue.Message);
            }

            run = Pipeline.record(run, step, outcome);
        }

        return RunBuiltIn(builtIn, dialect, run);
    }

    /// <summary>Runs the built-in steps gathered so far, and empties the list.</summary>
    private static PipelineRun RunBuiltIn(List<PipelineStep> steps, string dialect, PipelineRun run)
    {
        if (steps.Count == 0)
        {
            return run;
        }

        var result = Pipeline.runBuiltIn(steps, dialect, null, run);
        steps.Clear();
        return result;
    }
}
