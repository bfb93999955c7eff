using System.Net.Http.Headers;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>What the answer side did to a whole JSON answer: its report (plugin steps only), and the relay's error that replaces it.</summary>
/// <param name="Report">The steps as <see cref="Pipeline.report"/> writes them, when a plugin step ran; empty otherwise.</param>
/// <param name="Refusal">The relay's Anthropic error body when a plugin step failed under <c>on_error: fail</c>; null otherwise.</param>
internal readonly record struct AnswerSteps(string Report, byte[]? Refusal);

/// <summary>
/// Runs an attempt's answer-side steps over a buffered JSON answer, in order: built-in steps in Core
/// (<see cref="Pipeline.answerStep"/>), plugin steps that see <c>response</c> through the plugin host (one
/// <c>kind: response</c> call each), each outcome recorded under the step's <c>on_error</c>.
/// </summary>
internal static class PipelineAnswers
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>Whether any answer-side plugin step sees whole JSON answers (the answer is then buffered for it).</summary>
    public static bool HasPlugins(AttemptPipeline? pipeline, RelaySnapshot snapshot) =>
        pipeline is { Failed: false, Host: not null } && !pipeline.Selected.Response.IsEmpty
        && !StreamPlugins.answerSteps(snapshot.Config.Pipelines.Plugins, pipeline.Selected.Response).IsEmpty;

    public static async Task<AnswerSteps> ApplyAsync(AttemptPipeline pipeline, RelaySnapshot snapshot, string provider, string model, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var plugins = StreamPlugins.answerSteps(snapshot.Config.Pipelines.Plugins, pipeline.Selected.Response);
        var run = Pipeline.start(bytes);
        var pluginRan = false;
        foreach (var step in pipeline.Selected.Response)
        {
            if (run.Failure is not null)
            {
                break;
            }

            if (step.Transform is not Transform.Plugin)
            {
                run = Pipeline.answerStep(run, step);
                continue;
            }

            var config = plugins.FirstOrDefault(p => p.Item1.Equals(step))?.Item2;
            if (config is null)
            {
                continue; // a plugin that sees stream events only
            }

            pluginRan = true;
            var outcome = pipeline.Host is null
                ? StepOutcome.NewFailed("the plugin is not configured")
                : await pipeline.Host.CallAsync(config, PluginCall.NewResponse(provider, model, (int)response.StatusCode, run.Body), cancellationToken);
            run = Pipeline.record(run, step, outcome);
        }

        var report = pluginRan ? Pipeline.report(run) : "";

        // Core decides: a failed plugin withholds the answer, a failed built-in step leaves it (Pipeline.answerVerdict)
        switch (Pipeline.answerVerdict(snapshot.Secrets, run))
        {
            case AnswerVerdict.Withheld withheld:
                Replace(response, withheld.Refusal);
                return new AnswerSteps(report, withheld.Refusal);
            case AnswerVerdict.Edited edited:
                Replace(response, edited.Body);
                return new AnswerSteps(report, null);
            default:
                return new AnswerSteps(report, null);
        }
    }

    private static void Replace(HttpResponseMessage response, byte[] body)
    {
        var original = response.Content;
        response.Content = new ByteArrayContent(body);
        response.Content.Headers.ContentType = Json;
        original.Dispose();
    }
}
