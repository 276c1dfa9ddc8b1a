// word_diff: the marks `c3 roundtrip` prints where a regenerated text differs from its source.
#include <gtest/gtest.h>

#include "eval/word_diff.h"

using c3::eval::word_diff;

TEST(WordDiff, EqualTextsHaveNoMarks) {
  auto d = word_diff("The cat sat\non the mat.", "The cat sat\non the mat.");
  EXPECT_EQ(d.marked, "The cat sat\non the mat.");
  EXPECT_EQ(d.words, 6);
  EXPECT_EQ(d.changed, 0);
  EXPECT_EQ(d.inserted, 0);
}

TEST(WordDiff, MarksAReplacedWordAndKeepsTheSourceWhitespace) {
  auto d = word_diff("The cat sat\non the mat.", "The dog sat\non the mat.");
  EXPECT_EQ(d.marked, "The [-cat-] {+dog+} sat\non the mat.");
  EXPECT_EQ(d.changed, 1);
  EXPECT_EQ(d.inserted, 1);
}

TEST(WordDiff, MarksRemovedAndInsertedRuns) {
  auto d = word_diff("a b c d e", "a c d x y e");
  EXPECT_EQ(d.marked, "a [-b-] c d {+x y+} e");
  EXPECT_EQ(d.changed, 1);
  EXPECT_EQ(d.inserted, 2);
  auto tail = word_diff("a b c", "a b");
  EXPECT_EQ(tail.marked, "a b [-c-]");
  auto extra = word_diff("a b", "a b c d");
  EXPECT_EQ(extra.marked, "a b {+c d+}");
}

TEST(WordDiff, ShortensLongUnchangedRunsAroundTheEdits) {
  const std::string src = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12";
  auto d = word_diff(src, "w1 w2 w3 w4 w5 w6 X w8 w9 w10 w11 w12", 2);
  EXPECT_EQ(d.marked, "\u2026 w5 w6 [-w7-] {+X+} w8 w9 \u2026 ");
  auto two = word_diff("a b c d e f g h", "A b c d e f g H", 1);
  EXPECT_EQ(two.marked, "[-a-] {+A+} b \u2026 g [-h-] {+H+}");
  auto all = word_diff(src, "w1 w2 w3 w4 w5 w6 X w8 w9 w10 w11 w12", -1);
  EXPECT_EQ(all.marked, "w1 w2 w3 w4 w5 w6 [-w7-] {+X+} w8 w9 w10 w11 w12");
}

TEST(WordDiff, CompletelyDifferentTextsAreOneReplacement) {
  auto d = word_diff("one two", "three four five");
  EXPECT_EQ(d.marked, "[-one two-] {+three four five+}");
  EXPECT_EQ(d.changed, 2);
  EXPECT_EQ(d.inserted, 3);
  EXPECT_EQ(word_diff("", "").marked, "");
  EXPECT_EQ(word_diff("", "x").marked, "{+x+}");
}
