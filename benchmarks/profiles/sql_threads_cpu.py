#!/usr/bin/env python3
"""Where the --sql case's async paths spend CPU per row, from async-profiler's collapsed stacks with thread names
(agent options threads,collapsed,event=itimer), one recording per path (ASYNC: ML_PREDICT async, SCALAR: the
batched OnnxAsyncScoreFunction). Buckets the SQL job's task thread and our worker thread; the last job in the
recording only (the highest thread id of each kind). Usage: sql_threads_cpu.py FILE.collapsed ROWS MS_PER_SAMPLE
(MS_PER_SAMPLE: what one sample is worth; itimer ticks at the kernel's HZ, calibrate on a run with a measured CPU)."""
import sys,collections,re
f,rows,ms=sys.argv[1],float(sys.argv[2]),float(sys.argv[3])
TASK=lambda t:t.startswith('[Source: Sequence Source') or t.startswith('[Source: Custom')
WORK=lambda t:t.startswith('[onnx-ml-predict') or t.startswith('[onnx-score')
def tid(t): return int(re.search(r'tid=(\d+)',t).group(1))
lines=[]
for line in open(f):
    stack,_,n=line.rstrip().rpartition(' '); fr=stack.split(';'); lines.append((fr,int(n)))
last_task=max(tid(fr[0]) for fr,n in lines if TASK(fr[0]))
last_work=max(tid(fr[0]) for fr,n in lines if WORK(fr[0]))
def task_bucket(s):
    if 'OnnxAsyncPredictFunction.asyncPredict' in s or 'OnnxAsyncScoreFunction.eval' in s:
        if 'ArrayBlockingQueue' in s: return 'ours: hand-off to the worker (ArrayBlockingQueue.put, wakes it)'
        return 'ours: row conversion (SqlBinding.values / ARRAY -> float[]) and request'
    if 'Unsafe.park' in s or 'TaskMailboxImpl.take' in s: return 'Flink: blocking on a full capacity (park/unpark, kernel time)'
    if 'registerTimeout' in s or 'ProcessingTimeServiceImpl.registerTimer' in s: return 'Flink: a timeout timer per row (AsyncWaitOperator)'
    if 'OutputConversionOperator' in s: return 'Flink: output conversion RowData -> Row (DataStructureConverter)'
    if 'InferenceBenchmark$Meter' in s or 'DiscardingSink' in s or 'Sink' in s.split(';')[-1]: return 'benchmark: meter + sink'
    if 'processResults' in s or 'Mail.run' in s or 'RetryableResultHandlerDelegator' in s or 'emitCompletedElement' in s:
        return 'Flink: a result mail per row (queue entry, emit, joined row)'
    if 'AsyncMLPredictRunner' in s or 'AsyncPredictFunction' in s or 'AsyncFunction' in s or 'DelegatingAsync' in s or 'CompletableFuture' in s:
        return 'Flink: async invoke wrappers (codegen, futures per row)'
    if 'AsyncWaitOperator' in s: return 'Flink: AsyncWaitOperator queue bookkeeping'
    if 'InputConversionOperator' in s or 'StreamExecCalc' in s or 'ArrayDataSerializer' in s or 'DataStructureConverter' in s:
        return 'Flink: input conversion + CAST (float[] -> ArrayData, copies)'
    if 'IteratorSourceReader' in s or 'FromPool' in s or 'SourceOperator' in s: return 'benchmark: source'
    return 'other: '+s.split(';')[-1][:60]
def work_bucket(s):
    if 'libonnxruntime' in s or 'OrtSession_run' in s: return 'ORT run (JNI + native)'
    if 'OrtSession.run' in s: return 'ours: OrtSession.run Java side'
    if 'CompletableFuture.complete' in s:
        if 'Mailbox' in s: return 'Flink: a mailbox mail per row (put, lock, wake the task thread)'
        return 'Flink: future completion per row (callbacks, joined row)'
    if 'ArrayBlockingQueue' in s or 'parkNanos' in s: return 'ours: hand-off (queue poll / wait for rows)'
    if 'RecordBuffer.add' in s or '.encode' in s: return 'ours: encode + stage'
    if 'decode' in s: return 'ours: decode (SqlBinding.decode, float[] -> ArrayData)'
    if 'TensorPacker.pack' in s: return 'ours: pack'
    return 'other: '+s.split(';')[-1][:60]
kinds=collections.Counter(); task=collections.Counter(); work=collections.Counter()
for fr,n in lines:
    t=fr[0]; s=';'.join(fr)
    if TASK(t):
        if tid(t)==last_task: task[task_bucket(s)]+=n
        continue
    if WORK(t):
        if tid(t)==last_work: work[work_bucket(s)]+=n
        continue
    k=re.sub(r' tid=.*','',t).strip('[]'); k=re.sub(r'[#\-]?\d+$','',k)
    if 'Compiler' in k: k='JIT compilers'
    elif 'GC' in k or 'G1' in k: k='GC'
    elif 'DestroyJavaVM' in k: k='main (SQL planning, codegen, job submission)'
    elif 'JFR' in k: k='JFR'
    else: k='other threads (pekko, jobmanager, ...)'
    kinds[k]+=n
ns=lambda n: n*ms*1e6/rows
for name,c in (('task thread (last job)',task),('worker thread (last job)',work)):
    tot=sum(c.values()); print(f'== {name}: {tot} samples, ~{ns(tot):,.0f} ns per row')
    for b,n in c.most_common(16): print(f'  {ns(n):6,.0f} ns {100*n/tot:5.1f}%  {b}')
print('== rest of the process, whole recording (both jobs, start-up included)')
for k,n in kinds.most_common(): print(f'  {n:6d} samples  {k}')
