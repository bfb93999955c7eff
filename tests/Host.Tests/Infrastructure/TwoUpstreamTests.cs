namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>
/// A test class over two fake upstreams, started fresh for each test: <see cref="A"/> (answers <c>{}</c> until a
/// test sets its handler) and <see cref="B"/> (answers a message saying <c>from-b</c>).
/// </summary>
public abstract class TwoUpstreamTests : IAsyncLifetime
{
    protected FakeUpstream A { get; private set; } = null!;

    protected FakeUpstream B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        A = await FakeUpstream.StartAsync();
        B = await FakeUpstream.StartAsync();
        B.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
    }
}
