"""The 2017 source, ported only as far as TensorFlow 2 requires: the oracle for bit-identity.

Run it in a process of its own, since it turns eager execution off for the whole process as a TF1 port does
(importing this module runs it; ``oracle.source_losses`` starts it for you):

    python -m echo_rnn_tf1.source_2017 SEED NUM_EPOCHS OUT.txt

The cells below are the source's, line for line. The only changes:
- ``from __future__ import print_function, division`` is gone (a no-op on Python 3);
- the seeding header that the package's ``--seed`` promises (random, numpy, graph-level TF seed);
- ``tf`` is ``tf.compat.v1`` with eager execution off, and ``tf.contrib.rnn.BasicRNNCell`` is
  ``tf.nn.rnn_cell.BasicRNNCell`` (the same class), which needs tf-keras and TF_USE_LEGACY_KERAS=1 from
  TensorFlow 2.16 on (set where tf-keras is installed: TensorFlow 2.15 would want it too, not its own Keras 2);
- ``num_epochs`` comes from the command line, so a test can run one epoch;
- every loss is written to OUT.txt, one float32 value per line in its shortest exact form.
"""
import importlib.util
import os
import random
import sys

if importlib.util.find_spec("tf_keras") is not None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_eager_execution()

seed, epochs_arg, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
random.seed(seed)
np.random.seed(seed)
tf.set_random_seed(seed)

# 定义参数
num_epochs = epochs_arg   #全部数据一共反复训练次数
total_series_length = 50000
truncated_backprop_length = 10     #输入X1,x2,...Xn 的长度
state_size = 4     #隐藏层大小
num_classes = 2     #输出的class ， 本程序只有0,1两种输出
echo_step = 3      #输出偏移位数
batch_size = 5     #batch_sizs
num_batches = total_series_length//batch_size//truncated_backprop_length    #batch 的数量

# 生成数据
inputs_value = np.array(np.random.choice(2, total_series_length, p=[0.5, 0.5]))
targets_value = np.roll(inputs_value, echo_step)
for i in range(num_batches * batch_size):
    targets_value[i * truncated_backprop_length : (i * truncated_backprop_length + echo_step)] = 0

inputs_value = inputs_value.reshape((batch_size, -1))
targets_value = targets_value.reshape((batch_size, -1))

# 定义模型
batchX_placeholder = tf.placeholder(tf.int32, [batch_size, truncated_backprop_length])
batchY_placeholder = tf.placeholder(tf.int32, [batch_size, truncated_backprop_length])

one_hot_batchX_placeholder = tf.one_hot(batchX_placeholder , num_classes)


cell = tf.nn.rnn_cell.BasicRNNCell(state_size)
init_state = tf.zeros([batch_size, state_size])

rnn_outputs, final_state = tf.nn.dynamic_rnn(cell, one_hot_batchX_placeholder, initial_state=init_state)


W2 = tf.Variable(np.random.rand(state_size, num_classes),dtype=tf.float32)
b2 = tf.Variable(np.zeros((1,num_classes)), dtype=tf.float32)

logits = tf.reshape(
            tf.matmul(tf.reshape(rnn_outputs, [-1, state_size]), W2) + b2,
            [batch_size, truncated_backprop_length, num_classes])

losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batchY_placeholder, logits=logits)

total_loss = tf.reduce_mean(losses)
train_step = tf.train.AdagradOptimizer(0.3).minimize(total_loss)

# 训练模型
with tf.Session() as sess:
    sess.run(tf.initialize_all_variables())
    loss_list = []

    for epoch_idx in range(num_epochs):
        _current_cell_state = np.zeros((batch_size, state_size))
        _current_hidden_state = np.zeros((batch_size, state_size))

        print("New data, epoch", epoch_idx)

        for batch_idx in range(num_batches):
            start_idx = batch_idx * truncated_backprop_length
            end_idx = start_idx + truncated_backprop_length

            batchX = inputs_value[:,start_idx:end_idx]
            batchY = targets_value[:,start_idx:end_idx]

            _total_loss, _train_step = sess.run(
                [total_loss, train_step],
                feed_dict={
                    batchX_placeholder: batchX,
                    batchY_placeholder: batchY,
                })

            loss_list.append(_total_loss)

            if batch_idx%100 == 0:
                print("Step",batch_idx, "Batch loss", _total_loss)

with open(out_path, "w") as f:
    f.writelines("%s\n" % loss for loss in loss_list)
