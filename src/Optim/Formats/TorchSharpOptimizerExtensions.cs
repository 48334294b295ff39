using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Optim.Formats;
using TorchSharp.Modules;
using static TorchSharp.torch;
using StateDictionary = TorchSharp.torch.optim.Optimizer.StateDictionary;
using TorchSharpOptions = TorchSharp.Modules.OptimizerOptions;

// Declared in namespace Optim, not Optim.Formats, so that code written for TorchSharp's optimizers
// (optimizer.state_dict(), optimizer.save_state_dict(path), ...) compiles against ours with no extra using directive.
namespace Optim;

/// <summary>
/// The state-dict API of TorchSharp's own optimizers (<c>OptimizerHelper</c>), on this library's: <c>state_dict()</c>
/// returning TorchSharp's <see cref="StateDictionary"/> of TorchSharp's typed options and states
/// (<c>TorchSharp.Modules.Adam.Options</c>, <c>TorchSharp.Modules.Adam.State</c>, ...), <c>load_state_dict</c> from
/// such a dictionary, from a file or from a stream, <c>save_state_dict</c> to a file or a stream in TorchSharp's format,
/// and <c>to(device)</c>. For every algorithm TorchSharp also has (Adam, AdamW, SGD, Adagrad, RMSProp, Adadelta, Adamax,
/// ASGD, NAdam, RAdam, Rprop).
/// </summary>
/// <remarks>
/// <para>
/// Everything goes through the TorchSharp checkpoint format (<see cref="TorchSharpCheckpointExtensions"/>): a dictionary
/// is what TorchSharp's optimizer would hold after loading this optimizer's TorchSharp checkpoint, and loading a
/// dictionary loads the checkpoint TorchSharp's optimizer would write from it. So a load is validated before anything
/// changes, and a failed load changes nothing. The two dictionary methods hold that checkpoint in memory once (a
/// <see cref="MemoryStream"/>, so up to 2 GiB of state); the file and stream methods stream it.
/// </para>
/// <para>
/// Differences from TorchSharp: <c>state_dict()</c> returns a copy (TorchSharp returns its live state objects); a
/// parameter that has no state yet (state is created at the first step, as in PyTorch) appears with the state
/// TorchSharp's optimizer would have created for it (zeros, step 0), and such a state loads as no state.
/// </para>
/// </remarks>
public static class TorchSharpOptimizerExtensions
{
    /// <summary>
    /// The optimizer's state as TorchSharp's optimizers return it: one options object per group and one state object
    /// per parameter, of TorchSharp's types for the algorithm (e.g. <c>TorchSharp.Modules.Adam.Options</c> and
    /// <c>TorchSharp.Modules.Adam.State</c>). The tensors are copies that the caller owns (on each parameter's device).
    /// </summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <returns>TorchSharp's state dictionary.</returns>
    /// <exception cref="NotSupportedException">
    /// TorchSharp has no optimizer of this algorithm, or the state has no TorchSharp equivalent (see
    /// <see cref="TorchSharpCheckpointExtensions.SaveTorchSharp(Optimizer, Stream)"/>).
    /// </exception>
    public static StateDictionary state_dict(this Optimizer optimizer)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        var types = TorchSharpTypes.Of(optimizer);
        var groups = GroupParameters(optimizer);

        using var buffer = new MemoryStream();
        TorchSharpCheckpoint.Write(buffer, optimizer);
        buffer.Position = 0;
        using var reader = new BinaryReader(buffer, Encoding.UTF8);
        reader.ReadString();
        TorchSharpCheckpoint.DecodeCount(reader);
        TorchSharpCheckpoint.DecodeCount(reader);

        var dict = NewStateDictionary();
        foreach (var _ in groups)
        {
            var options = types.NewOptions();
            options.LoadStateDict(reader);
            dict.Options.Add(options);
        }
        // The state objects own their tensors, as TorchSharp's do: none may stay in a dispose scope of the caller's.
        using var scope = NewDisposeScope();
        var index = 0;
        for (var g = 0; g < groups.Count; g++)
        {
            var indices = new List<int>();
            foreach (var parameter in groups[g])
            {
                var state = types.NewState(parameter);
                state.Initialize(dict.Options[g]);
                state.LoadStateDict(reader);
                dict.State.Add(state);
                indices.Add(index++);
            }
            dict.StateIndexRef.Add(indices);
        }
        scope.Detach(scope.DisposablesView.ToList());
        return dict;
    }

    /// <summary>
    /// Loads a dictionary from <see cref="state_dict"/> (of this optimizer or another of the same algorithm and layout,
    /// or of TorchSharp's optimizer of the same algorithm): hyperparameters and state, as TorchSharp's
    /// <c>load_state_dict</c> does. The dictionary's tensors are copied. Everything is checked first; a failed load
    /// changes nothing.
    /// </summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <param name="state_dict">TorchSharp's state dictionary.</param>
    /// <exception cref="ArgumentException">
    /// Another number of groups or states (TorchSharp's messages), entries of another algorithm's types, incomplete
    /// entries, or values this optimizer rejects.
    /// </exception>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of this algorithm.</exception>
    public static void load_state_dict(this Optimizer optimizer, StateDictionary state_dict)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(state_dict);
        var layout = TorchSharpCheckpoint.LayoutOf(optimizer);
        var types = TorchSharpTypes.Of(optimizer);
        var groups = GroupParameters(optimizer);
        if (state_dict.Options.Count != groups.Count)
            throw new ArgumentException("Invalid optimizer state -- different number of parameter groups.", nameof(state_dict));
        if (state_dict.State.Count != groups.Sum(g => g.Count))
            throw new ArgumentException("Invalid optimizer state -- different number of states.", nameof(state_dict));
        types.Check(state_dict);

        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(layout.ClassName);
            TorchSharpCheckpoint.EncodeCount(writer, state_dict.Options.Count);
            TorchSharpCheckpoint.EncodeCount(writer, state_dict.State.Count);
            try
            {
                foreach (var options in state_dict.Options) options.SaveStateDict(writer);
                foreach (var state in state_dict.State) state.SaveStateDict(writer);
            }
            catch (Exception e) when (e is InvalidOperationException or NullReferenceException)
            {
                // TorchSharp's Save methods read every field: a null one (an options object never given to an
                // optimizer, a disposed state) cannot be loaded.
                throw new ArgumentException($"the state dictionary has an incomplete {layout.ClassName} options or state object ({e.Message}).", nameof(state_dict), e);
            }
        }
        buffer.Position = 0;
        FileLoads.Commit(optimizer, TorchSharpCheckpoint.Read(buffer, optimizer));
    }

    /// <summary>
    /// Writes the state to a file in TorchSharp's format (as <see cref="TorchSharpCheckpointExtensions.SaveTorchSharp(Optimizer, string)"/>:
    /// atomically), for this library's or TorchSharp's <c>load_state_dict(location)</c>.
    /// </summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <param name="location">The file.</param>
    /// <inheritdoc cref="TorchSharpCheckpointExtensions.SaveTorchSharp(Optimizer, Stream)" path="/exception"/>
    public static void save_state_dict(this Optimizer optimizer, string location) => optimizer.SaveTorchSharp(location);

    /// <summary>Writes the state in TorchSharp's format through <paramref name="writer"/> (TorchSharp's <c>save_state_dict(BinaryWriter)</c>).</summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <param name="writer">A writer on a writable stream; it is flushed.</param>
    /// <inheritdoc cref="TorchSharpCheckpointExtensions.SaveTorchSharp(Optimizer, Stream)" path="/exception"/>
    public static void save_state_dict(this Optimizer optimizer, BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Flush();
        optimizer.SaveTorchSharp(writer.BaseStream);
    }

    /// <summary>
    /// Loads a file in TorchSharp's format (TorchSharp's <c>load_state_dict(location)</c>, written by TorchSharp's
    /// optimizer of the same algorithm or by <see cref="save_state_dict(Optimizer, string)"/>); a failed load changes nothing.
    /// </summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <param name="location">The file.</param>
    /// <exception cref="InvalidDataException">
    /// A file of another optimizer class (TorchSharp's exception and message), not a TorchSharp optimizer checkpoint,
    /// truncated, malformed, or with bytes after the checkpoint.
    /// </exception>
    /// <exception cref="ArgumentException">Another number of groups or states, or values this optimizer rejects.</exception>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of this algorithm.</exception>
    public static void load_state_dict(this Optimizer optimizer, string location)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        FileLoads.Commit(optimizer, TorchSharpCheckpoint.ReadFile(location, optimizer, otherClassIsInvalidData: true));
    }

    /// <summary>
    /// Loads a checkpoint in TorchSharp's format from <paramref name="reader"/>'s stream (TorchSharp's
    /// <c>load_state_dict(BinaryReader)</c>), which is left just after it; a failed load changes nothing.
    /// </summary>
    /// <param name="optimizer">An optimizer of an algorithm TorchSharp has.</param>
    /// <param name="reader">A reader positioned at the checkpoint.</param>
    /// <exception cref="InvalidDataException">
    /// A checkpoint of another optimizer class (TorchSharp's exception and message), not a TorchSharp optimizer
    /// checkpoint, truncated, or malformed.
    /// </exception>
    /// <exception cref="ArgumentException">Another number of groups or states, or values this optimizer rejects.</exception>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of this algorithm.</exception>
    public static void load_state_dict(this Optimizer optimizer, BinaryReader reader)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(reader);
        FileLoads.Commit(optimizer, TorchSharpCheckpoint.Read(reader.BaseStream, optimizer, otherClassIsInvalidData: true));
    }

    /// <summary>
    /// TorchSharp's <c>to(device)</c>, which moves the state to <paramref name="device"/>. This library keeps every state
    /// tensor on its parameter's device already (a load moves it there, as PyTorch's does), so there is nothing to move:
    /// this checks that the parameters are on <paramref name="device"/>, where their state is.
    /// </summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="device">The device the model is on.</param>
    /// <exception cref="ArgumentException">
    /// A parameter is on another device (move the model first, then create the optimizer), or has been disposed
    /// (TorchSharp's <c>Module.to</c> replaces parameters).
    /// </exception>
    public static void to(this Optimizer optimizer, Device device)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(device);
        var index = 0;
        foreach (var parameter in optimizer.parameters())
        {
            if (parameter.IsInvalid)
                throw new ArgumentException(
                    $"parameter {index} has been disposed: TorchSharp's Module.to replaces a module's parameters; create the optimizer after moving the module.", nameof(device));
            if (parameter.device.type != device.type || parameter.device.index != device.index && device.index >= 0)
                throw new ArgumentException(
                    $"parameter {index} is on {parameter.device}, not {device}: state lives on its parameter's device, so move the module to {device} before creating the optimizer.", nameof(device));
            index++;
        }
    }

    // The parameters of each group, in order (TorchSharp's state order).
    private static List<List<Parameter>> GroupParameters(Optimizer optimizer)
    {
        var parameters = optimizer.parameters().ToList();
        // The layout only: the state-dict hooks run once, in the state_dict() that asked.
        return optimizer.StateDictCore().ParamGroups.Select(g => g.Params.Select(id => parameters[id]).ToList()).ToList();
    }

    // TorchSharp's StateDictionary has an internal constructor (TorchSharp 0.107); a TorchSharp release that changes it
    // fails here, loudly, and in the test that takes a state_dict().
    private static StateDictionary NewStateDictionary() =>
        Activator.CreateInstance(typeof(StateDictionary), nonPublic: true) as StateDictionary
            ?? throw new InvalidOperationException("TorchSharp's StateDictionary could not be created.");

    /// <summary>TorchSharp's options and state types of one algorithm.</summary>
    private sealed record TorchSharpTypes(Type OptionsType, Func<TorchSharpOptions> NewOptions, Type StateType, Func<Parameter, OptimizerState> NewState)
    {
        private static TorchSharpTypes Of<TOptions, TState>(Func<Parameter, TState> newState)
            where TOptions : TorchSharpOptions, new() where TState : OptimizerState =>
            new(typeof(TOptions), () => new TOptions(), typeof(TState), newState);

        // By TorchSharp's class name (ITorchSharpLayout.ClassName).
        private static readonly Dictionary<string, TorchSharpTypes> ByClassName = new()
        {
            ["Adam"] = Of<TorchSharp.Modules.Adam.Options, TorchSharp.Modules.Adam.State>(p => new(p)),
            ["AdamW"] = Of<TorchSharp.Modules.AdamW.Options, TorchSharp.Modules.AdamW.State>(p => new(p)),
            ["SGD"] = Of<TorchSharp.Modules.SGD.Options, TorchSharp.Modules.SGD.State>(p => new(p)),
            ["Adagrad"] = Of<TorchSharp.Modules.Adagrad.Options, TorchSharp.Modules.Adagrad.State>(p => new(p)),
            ["RMSProp"] = Of<TorchSharp.Modules.RMSProp.Options, TorchSharp.Modules.RMSProp.State>(p => new(p)),
            ["Adadelta"] = Of<TorchSharp.Modules.Adadelta.Options, TorchSharp.Modules.Adadelta.State>(p => new(p)),
            ["Adamax"] = Of<TorchSharp.Modules.Adamax.Options, TorchSharp.Modules.Adamax.State>(p => new(p)),
            ["ASGD"] = Of<TorchSharp.Modules.ASGD.Options, TorchSharp.Modules.ASGD.State>(p => new(p)),
            ["NAdam"] = Of<TorchSharp.Modules.NAdam.Options, TorchSharp.Modules.NAdam.State>(p => new(p)),
            ["RAdam"] = Of<TorchSharp.Modules.RAdam.Options, TorchSharp.Modules.RAdam.State>(p => new(p)),
            ["Rprop"] = Of<TorchSharp.Modules.Rprop.Options, TorchSharp.Modules.Rprop.State>(p => new(p)),
        };

        public static TorchSharpTypes Of(Optimizer optimizer)
        {
            var className = TorchSharpCheckpoint.ClassName(optimizer);
            return ByClassName.TryGetValue(className, out var types)
                ? types
                : throw new NotSupportedException($"TorchSharp's {className} has no managed state objects (no state_dict()).");
        }

        // Every entry must be of this algorithm's TorchSharp types: TorchSharp's own load would cast it and fail.
        public void Check(StateDictionary state_dict)
        {
            for (var i = 0; i < state_dict.Options.Count; i++)
            {
                if (state_dict.Options[i]?.GetType() != OptionsType)
                    throw new ArgumentException($"Options[{i}] is {state_dict.Options[i]?.GetType().FullName ?? "null"}, not {OptionsType.FullName}.", nameof(state_dict));
            }
            for (var i = 0; i < state_dict.State.Count; i++)
            {
                if (state_dict.State[i]?.GetType() != StateType)
                    throw new ArgumentException($"State[{i}] is {state_dict.State[i]?.GetType().FullName ?? "null"}, not {StateType.FullName}.", nameof(state_dict));
            }
        }
    }
}
