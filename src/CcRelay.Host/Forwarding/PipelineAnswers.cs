using System.Net.Http.Headers;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>Runs an attempt's answer-side steps over a buffered JSON answer (<see cref="Pipeline.runAnswer"/>).</summary>
internal static class PipelineAnswers
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public static async Task ApplyAsync(AttemptPipeline pipeline, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var run = Pipeline.runAnswer(pipeline.Selected.Response, bytes);
        if (!run.Changed || run.Failure is not null)
        {
            // a failed answer step leaves the answer as it came: the upstream's answer is never withheld
            return;
        }

        var original = response.Content;
        response.Content = new ByteArrayContent(run.Body);
        response.Content.Headers.ContentType = Json;
        original.Dispose();
    }
}
