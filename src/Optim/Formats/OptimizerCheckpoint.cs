using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// An optimizer's state dict in Optim's checkpoint container (<see cref="CheckpointWriter"/>, kind "optimizer"):
/// <code>
/// section "optimizer":   type (string)
/// section "param_group": initial_lr (double) | params (list of longs) | every hyperparameter by PyTorch's name, as
///                        its declared type
///   ... one per group, in order
/// section "state":       id (long) | every state tensor by PyTorch's key, in order
///   ... one per parameter that has state
/// section "global":      the optimizer-wide state (tensor, list of tensors, double, long, bool, string); only when
///                        there is any
/// </code>
/// Version 1 files (one payload built in memory, at most 2 GiB) are still read (<see cref="CheckpointV1"/>).
/// </summary>
internal static class OptimizerCheckpoint
{
    /// <summary>The container kind of optimizer checkpoints.</summary>
    public const string Kind = "optimizer";

    private const string InitialLr = "initial_lr", Params = "params", Id = "id";

    /// <summary>Writes <paramref name="stateDict"/>; it is checked first, so a dict that cannot be written writes nothing.</summary>
    /// <exception cref="ObjectDisposedException">A tensor of the dict was disposed.</exception>
    /// <exception cref="ArgumentException">A hyperparameter or optimizer-wide value of a type checkpoints cannot hold.</exception>
    public static void Write(Stream stream, OptimizerStateDict stateDict)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(stateDict);
        stateDict.ThrowIfDisposed();
        foreach (var group in stateDict.ParamGroups)
        {
            foreach (var (name, value) in group.Hyperparameters)
            {
                if (name is InitialLr or Params)
                    throw new ArgumentException($"a hyperparameter cannot be called '{name}' (the name of a group field).", nameof(stateDict));
                if (!IsHyperparameterValue(value))
                    throw new ArgumentException($"hyperparameter '{name}' has unsupported type {value?.GetType().Name}.", nameof(stateDict));
            }
        }
        foreach (var (key, value) in stateDict.Global) OptimizerGlobalState.Normalize(value, key);

        using var w = new CheckpointWriter(stream, Kind);
        w.BeginSection("optimizer");
        w.Write("type", stateDict.OptimizerType);
        foreach (var group in stateDict.ParamGroups)
        {
            w.BeginSection("param_group");
            w.Write(InitialLr, group.InitialLr);
            w.Write(Params, group.Params.Select(id => (long)id).ToArray());
            foreach (var (name, value) in group.Hyperparameters) w.Write(name, value);
        }
        foreach (var (id, entries) in stateDict.State)
        {
            w.BeginSection("state");
            w.Write(Id, (long)id);
            foreach (var (key, tensor) in entries) w.Write(key, tensor);
        }
        if (stateDict.Global.Count > 0)
        {
            w.BeginSection("global");
            foreach (var (key, value) in stateDict.Global) w.Write(key, OptimizerGlobalState.Normalize(value, key));
        }
        w.Finish();
    }

    /// <summary>
    /// Reads a checkpoint of version 1 or 2 in one pass. The state dict's tensors are new CPU tensors the caller owns
    /// (detached from dispose scopes: <see cref="OptimizerStateDict.DisposeTensors"/> them). Nothing is returned before
    /// the checksum over the whole file has been verified.
    /// </summary>
    /// <param name="stream">The stream, positioned at the checkpoint; left just after it.</param>
    /// <param name="schema">The option schema of the optimizer it is for (to read enum hyperparameters), or null.</param>
    /// <exception cref="InvalidDataException">Not a checkpoint, an unsupported version, truncated or corrupted.</exception>
    public static OptimizerStateDict Read(Stream stream, OptionSchema? schema = null)
    {
        using var reader = CheckpointReader.Open(stream);
        if (reader.Version == 1) return CheckpointV1.ReadAfterHeader(reader.Stream);
        if (reader.Kind != Kind) throw new InvalidDataException($"the checkpoint holds a '{reader.Kind}', not an optimizer's state.");

        string? type = null;
        var groups = new List<GroupBuilder>();
        var state = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
        var global = new Dictionary<string, object>();
        var globalOrder = new List<KeyValuePair<string, object>>();

        string? section = null;
        GroupBuilder? group = null;
        ParameterState? entries = null;
        var sections = 0;
        var seenGlobal = false;

        void EndSection()
        {
            group?.Validate();
            if (group is not null) groups.Add(group);
            group = null;
            entries = null;
        }

        while (true)
        {
            var kind = reader.Next(out var name, out var value);
            if (kind == CheckpointReader.RecordKind.End) break;
            if (kind == CheckpointReader.RecordKind.Section)
            {
                EndSection();
                if ((sections++ == 0) != (name == "optimizer"))
                    throw new InvalidDataException("an optimizer checkpoint starts with its 'optimizer' section, and has one.");
                switch (name)
                {
                    case "optimizer": break;
                    case "param_group": group = new GroupBuilder(groups.Count); break;
                    case "state": break;
                    case "global":
                        if (seenGlobal) throw new InvalidDataException("the checkpoint has two 'global' sections.");
                        seenGlobal = true;
                        break;
                    default: throw new InvalidDataException($"an optimizer checkpoint has no section '{name}'.");
                }
                section = name;
                continue;
            }

            switch (section)
            {
                case "optimizer" when name == "type" && value is string s && type is null:
                    type = s;
                    break;
                case "param_group":
                    group!.Add(name, value);
                    break;
                case "state" when entries is null:
                    if (name != Id || value is not long id || id < 0 || id > int.MaxValue)
                        throw new InvalidDataException("a 'state' section starts with the parameter's id.");
                    entries = new ParameterState { IsInitialized = true };
                    if (!state.TryAdd((int)id, entries)) throw new InvalidDataException($"parameter id {id} has state twice.");
                    break;
                case "state":
                    if (value is not Tensor tensor) throw new InvalidDataException($"state '{name}' is not a tensor.");
                    if (entries!.ContainsKey(name)) throw new InvalidDataException($"a parameter has state '{name}' twice.");
                    entries.Set(name, tensor);
                    break;
                case "global":
                    if (value is not (Tensor or Tensor[] or double or long or bool or string))
                        throw new InvalidDataException($"optimizer-wide state '{name}' has a value of a type it cannot have.");
                    if (!global.TryAdd(name, value)) throw new InvalidDataException($"optimizer-wide state '{name}' appears twice.");
                    globalOrder.Add(new(name, value));
                    break;
                default:
                    throw new InvalidDataException($"the checkpoint has an unexpected entry '{name}' in section '{section ?? "(none)"}'.");
            }
        }
        EndSection();
        if (type is null) throw new InvalidDataException("the checkpoint names no optimizer type.");
        reader.Finish();

        // Only now, with the checksum verified, is the content interpreted: what does not fit is an ArgumentException.
        schema ??= SchemaOf(type);
        var result = new OptimizerStateDict(type, state, groups.Select(g => g.Build(schema)).ToList()) { Global = globalOrder.ToDictionary(e => e.Key, e => e.Value) };
        foreach (var t in result.Tensors()) reader.Keep(t);
        return result;
    }

    private static bool IsHyperparameterValue(object? value) =>
        value is null or double or bool or int or long or string or Enum or ValueTuple<double, double> or IReadOnlyList<double>;

    private static OptionSchema? SchemaOf(string? type) =>
        type is null ? null : AlgorithmCatalog.All.FirstOrDefault(a => a.Name == type)?.Schema;

    // One "param_group" section as it is read.
    private sealed class GroupBuilder(int index)
    {
        private readonly List<KeyValuePair<string, object?>> _hyperparameters = new();
        private double? _initialLr;
        private List<int>? _params;

        public void Add(string name, object? value)
        {
            switch (name)
            {
                case InitialLr:
                    _initialLr = _initialLr is null && value is double d ? d : throw Malformed(name);
                    break;
                case Params:
                    if (_params is not null || value is not long[] ids) throw Malformed(name);
                    _params = ids.Select(id => id is >= 0 and <= int.MaxValue ? (int)id : throw Malformed(name)).ToList();
                    break;
                default:
                    if (_hyperparameters.Exists(h => h.Key == name)) throw new InvalidDataException($"group {index} has hyperparameter '{name}' twice.");
                    _hyperparameters.Add(new(name, value));
                    break;
            }
        }

        public void Validate()
        {
            if (_initialLr is null) throw Malformed(InitialLr);
            if (_params is null) throw Malformed(Params);
        }

        public ParamGroupState Build(OptionSchema? schema) => new(
            _hyperparameters.Select(h => new KeyValuePair<string, object?>(h.Key, h.Value is CheckpointEnum e ? Enum(h.Key, e, schema) : h.Value)).ToList(),
            _initialLr!.Value,
            _params!);

        private InvalidDataException Malformed(string field) => new($"group {index} of the checkpoint has a missing or malformed '{field}'.");

        // An enum is read as the type the schema declares; a file naming another type is data this optimizer does not take.
        private static object Enum(string name, CheckpointEnum value, OptionSchema? schema)
        {
            var declared = schema?.Find(name)?.ValueType ?? typeof(Implementation).Assembly.GetType(value.TypeName);
            if (declared is null || !declared.IsEnum)
                throw new ArgumentException($"hyperparameter '{name}' is a {value.TypeName}, which this optimizer does not have.");
            return value.As(declared)
                ?? throw new ArgumentException($"hyperparameter '{name}' is {value.TypeName}.{value.Member}; the optimizer expects a {declared.FullName}.");
        }
    }
}
