namespace CcRelay.Cli.Claude;

/// <summary>Whether a cc-relay answers at a URL: <c>GET /</c> says <c>cc-relay &lt;version&gt;</c>.</summary>
internal static class RelayProbe
{
    public static async Task<bool> IsRelayAsync(Uri url, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var client = new HttpClient { Timeout = timeout };
        try
        {
            using var answer = await client.GetAsync(new Uri(url, "/"), cancellationToken);
            return answer.IsSuccessStatusCode && (await answer.Content.ReadAsStringAsync(cancellationToken)).StartsWith("cc-relay ", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
