"""The TensorFlow ops a SavedModel may hold: computation on tensors and variables, nothing else.

Left out on purpose (examples): WriteFile, ReadFile, MatchingFiles, ImmutableConst (maps a file),
Print/PrintV2 (write to files or stderr), PyFunc/PyFuncStateless/EagerPyFunc (run Python),
InitializeTableFromTextFile*, DecodeProto/EncodeProto (descriptor files), every *Dataset, Iterator,
Reader, Queue, Summary, Send/Recv, Collective, Nccl, TPU and RemoteCall op, and custom ops.
The checkpoint ops are listed apart: ``savedmodel`` allows them only in the SavedModel's own saver.
"""
from __future__ import annotations

_GRAPH = """
Const Placeholder PlaceholderV2 PlaceholderWithDefault Identity IdentityN NoOp StopGradient PreventGradient Snapshot
EnsureShape CheckNumerics CheckNumericsV2 Assert GuaranteeConst ZerosLike OnesLike Fill Empty
VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp VariableShape
DisableCopyOnRead DestroyResourceOp Variable VariableV2 Assign AssignAdd AssignSub IsVariableInitialized
ResourceGather ResourceGatherNd ResourceScatterUpdate ResourceScatterAdd ResourceScatterSub
StatefulPartitionedCall PartitionedCall If StatelessIf While StatelessWhile Case StatelessCase
Switch Merge Enter Exit NextIteration LoopCond ControlTrigger
EmptyTensorList TensorListConcat TensorListConcatV2 TensorListElementShape TensorListFromTensor TensorListGather
TensorListGetItem TensorListLength TensorListPopBack TensorListPushBack TensorListPushBackBatch TensorListReserve
TensorListResize TensorListScatter TensorListScatterIntoExistingList TensorListScatterV2 TensorListSetItem
TensorListSplit TensorListStack
TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3 TensorArrayScatterV3 TensorArraySizeV3
TensorArrayConcatV3 TensorArraySplitV3 TensorArrayCloseV3
HashTableV2 MutableHashTableV2 LookupTableFindV2 LookupTableImportV2 LookupTableSizeV2 InitializeTableV2
"""
_MATH = """
Abs Acos Acosh Add AddN AddV2 Asin Asinh Atan Atan2 Atanh Ceil Cos Cosh Div DivNoNan Elu Equal Erf Erfc Erfinv Exp
Expm1 Floor FloorDiv FloorMod Greater GreaterEqual Inv Reciprocal IsFinite IsInf IsNan LeakyRelu Less LessEqual
Lgamma Digamma Log Log1p LogicalAnd LogicalNot LogicalOr Maximum Minimum Mod Mul MulNoNan Ndtri Neg NotEqual Pow
RealDiv Relu Relu6 Rint Round Rsqrt Selu Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Square SquaredDifference Sub
Tan Tanh TruncateDiv TruncateMod Xdivy Xlogy Xlog1py ClipByValue BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift
RightShift Select SelectV2 Cast Bitcast ApproximateEqual Real Imag Complex ComplexAbs Conj Angle
All Any ArgMax ArgMin Max Mean Min Prod Sum EuclideanNorm Cumsum Cumprod CumulativeLogsumexp
SegmentSum SegmentMean SegmentMax SegmentMin SegmentProd UnsortedSegmentSum UnsortedSegmentMax UnsortedSegmentMin
UnsortedSegmentProd
MatMul BatchMatMul BatchMatMulV2 BatchMatMulV3 Einsum MatrixBandPart MatrixDiag MatrixDiagV2 MatrixDiagV3
MatrixDiagPart MatrixDiagPartV2 MatrixDiagPartV3 MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3 MatrixInverse
MatrixDeterminant Cholesky Cross Diag DiagPart
"""
_NN = """
BiasAdd BiasAddV1 Conv2D Conv3D Conv2DBackpropInput Conv3DBackpropInputV2 DepthwiseConv2dNative
DepthwiseConv2dNativeBackpropInput AvgPool AvgPool3D MaxPool MaxPoolV2 MaxPool3D MaxPoolWithArgmax
FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 BatchNormWithGlobalNormalization LRN Softmax LogSoftmax
TopK TopKV2 InTopKV2 L2Loss Dilation2D NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5
CombinedNonMaxSuppression CropAndResize ResizeBilinear ResizeNearestNeighbor ResizeBicubic ResizeArea
ScaleAndTranslate FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel
QuantizeAndDequantizeV2 QuantizeAndDequantizeV3 QuantizeAndDequantizeV4 QuantizeV2 Dequantize
LSTMBlockCell BlockLSTM BlockLSTMV2 GRUBlockCell
"""
_ARRAY = """
Pack Unpack Concat ConcatV2 ConcatOffset Split SplitV Reshape Squeeze ExpandDims Transpose ConjugateTranspose Tile
Pad PadV2 MirrorPad Slice StridedSlice TensorStridedSliceUpdate Gather GatherV2 GatherNd ScatterNd
TensorScatterUpdate TensorScatterAdd TensorScatterSub TensorScatterMax TensorScatterMin Shape ShapeN Size Rank Range
LinSpace OneHot Reverse ReverseV2 ReverseSequence Roll Where Unique UniqueV2 UniqueWithCounts BroadcastTo
BroadcastArgs BroadcastGradientArgs DepthToSpace SpaceToDepth SpaceToBatchND BatchToSpaceND SpaceToBatch
BatchToSpace ExtractImagePatches InvertPermutation DataFormatDimMap DataFormatVecPermute DynamicStitch
ParallelDynamicStitch DynamicPartition ListDiff UnravelIndex UpperBound LowerBound Bucketize SparseToDense
NthElement StringJoin StaticRegexFullMatch StaticRegexReplace StringFormat AsString
"""
_RANDOM = """
RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal Multinomial RandomShuffle
StatelessRandomUniform StatelessRandomUniformV2 StatelessRandomUniformInt StatelessRandomUniformIntV2
StatelessRandomUniformFullInt StatelessRandomUniformFullIntV2 StatelessRandomNormal StatelessRandomNormalV2
StatelessTruncatedNormal StatelessTruncatedNormalV2 StatelessRandomGetKeyCounter StatelessRandomGetAlg
StatelessRandomGetKeyCounterAlg StatelessMultinomial RngReadAndSkip
"""

COMPUTE_OPS = frozenset(" ".join((_GRAPH, _MATH, _NN, _ARRAY, _RANDOM)).split())
# read variables back from the SavedModel's own variables/ folder (the restore op's file name is checked)
CHECKPOINT_READ_OPS = frozenset({"RestoreV2", "Restore", "RestoreSlice"})
# write a checkpoint: only in the saver's save function, which no loader runs
CHECKPOINT_WRITE_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints", "ShardedFilename",
                                  "ShardedFilespec"})
