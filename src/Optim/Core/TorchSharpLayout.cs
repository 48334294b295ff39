using System.Collections.Generic;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// How one algorithm's state maps to the checkpoint format of TorchSharp's optimizer of the same algorithm
/// (<c>save_state_dict</c> / <c>load_state_dict</c>). Each algorithm that TorchSharp also has declares one, next to the
/// algorithm, and exposes it through <see cref="AlgorithmInfo.TorchSharpLayout"/>; the file format itself (framing,
/// tensors, validation) lives in the format layer and reads and writes through <see cref="ITorchSharpStateReader"/> and
/// <see cref="ITorchSharpStateWriter"/>. An algorithm without a layout has no TorchSharp format.
/// </summary>
public interface ITorchSharpLayout
{
    /// <summary>TorchSharp's class name, which the file starts with ("Adam", "SGD", "RMSProp", ...).</summary>
    string ClassName { get; }

    /// <summary>
    /// The hyperparameters TorchSharp writes for each group after <c>initial_lr</c> and <c>lr</c>, in its order, by the
    /// names of the algorithm's <see cref="OptionSchema"/>. Their types come from the schema: each is a
    /// <see cref="HyperparameterType.Double"/> (an f64), a <see cref="HyperparameterType.Bool"/> (a byte) or a
    /// <see cref="HyperparameterType.DoublePair"/> (two f64s, first then second: TorchSharp's separate fields for
    /// PyTorch's pairs, e.g. Rprop's <c>etaminus</c>, <c>etaplus</c> for <c>etas</c>).
    /// </summary>
    IReadOnlyList<string> OptionFields { get; }

    /// <summary>
    /// Hyperparameters TorchSharp's optimizer does not have, with the value its behaviour corresponds to (e.g. Adagrad's
    /// <c>maximize</c> = false). Reading adds them to every group; writing refuses a group whose value differs.
    /// </summary>
    IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; }

    /// <summary>
    /// Reads one parameter's state (after the groups) and returns it under PyTorch's keys, in PyTorch's order, or null
    /// where PyTorch would have no state for the parameter. The reader frees the tensors it returned that the state does
    /// not keep.
    /// </summary>
    /// <param name="reader">The file, positioned at the parameter's state.</param>
    /// <param name="group">The hyperparameters of the parameter's group, as read.</param>
    IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group);

    /// <summary>Writes one parameter's state as TorchSharp's optimizer keeps it.</summary>
    /// <param name="writer">The file.</param>
    /// <param name="group">The parameter's group.</param>
    /// <param name="parameter">The parameter (for zero-filled state it never had).</param>
    /// <param name="state">Its state under PyTorch's keys, or null when it has none.</param>
    void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state);
}

/// <summary>The primitives of TorchSharp's checkpoint format an <see cref="ITorchSharpLayout"/> reads state with.</summary>
public interface ITorchSharpStateReader
{
    /// <summary>A step count (an i64; negative counts are rejected as damaged data).</summary>
    long ReadStep();

    /// <summary>A boolean (one byte, 0 or 1).</summary>
    /// <param name="what">What it means, for the error message.</param>
    bool ReadBool(string what);

    /// <summary>A double (an f64; TorchSharp's scalar state, e.g. NAdam's <c>mu_product</c>, ASGD's <c>eta</c>).</summary>
    double ReadDouble();

    /// <summary>A tensor: a new CPU tensor, validated (dtype, dimensions, byte count) before it is created.</summary>
    /// <param name="what">Its key, for error messages.</param>
    Tensor ReadTensor(string what);

    /// <summary>A presence flag and, when set, a tensor (TorchSharp's optional state).</summary>
    /// <param name="what">Its key, for error messages.</param>
    Tensor? ReadOptionalTensor(string what);
}

/// <summary>The primitives of TorchSharp's checkpoint format an <see cref="ITorchSharpLayout"/> writes state with.</summary>
public interface ITorchSharpStateWriter
{
    /// <summary>A step count as TorchSharp's whole-number step (an i64), from a <c>step</c> tensor or null for 0.</summary>
    /// <param name="step">The 0-dim step tensor, or null.</param>
    /// <exception cref="System.InvalidOperationException">The count is not a whole number.</exception>
    void WriteStep(Tensor? step);

    /// <summary>A boolean.</summary>
    /// <param name="value">The value.</param>
    void WriteBool(bool value);

    /// <summary>A double (an f64).</summary>
    /// <param name="value">The value.</param>
    void WriteDouble(double value);

    /// <summary>A tensor (copied to the CPU and made contiguous as needed).</summary>
    /// <param name="tensor">The tensor.</param>
    void WriteTensor(Tensor tensor);

    /// <summary>A presence flag and, when <paramref name="tensor"/> is not null, the tensor.</summary>
    /// <param name="tensor">The tensor, or null.</param>
    void WriteOptionalTensor(Tensor? tensor);
}
