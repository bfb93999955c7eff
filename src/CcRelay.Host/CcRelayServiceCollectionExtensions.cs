using CcRelay.Host.Endpoints;
using CcRelay.Host.Forwarding;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>Registers the relay in any ASP.NET Core application.</summary>
public static class CcRelayServiceCollectionExtensions
{
    /// <summary>
    /// Adds the relay's services. Pair with <see cref="CcRelayEndpointRouteBuilderExtensions.MapCcRelay"/>.
    /// </summary>
    public static IServiceCollection AddCcRelay(this IServiceCollection services, Action<CcRelayOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new CcRelayOptions();
        configure?.Invoke(options);

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(options);
        services.AddSingleton(new RelayState(options.Config));
        services.AddSingleton(sp => new UpstreamForwarder(
            UpstreamClient.Create(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<UpstreamForwarder>>()));
        services.AddSingleton<MessagesEndpoint>();
        services.AddSingleton<ModelsEndpoint>();
        return services;
    }
}
