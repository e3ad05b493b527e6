-- A tiny learnable SST-2-style task for the Lua tests: sentences made only of words in the
-- vocabulary of tests/fixtures/bert_tiny/cls (64 entries), so nothing maps to [UNK]. Class 1
-- sentences carry words of set A, class 0 of set B, mixed with common filler words.
-- usage: local make = dofile(AF_SOURCE_DIR .. "/tests/lua/tiny_task.lua"); make(dir, 400, 100)
local A = {"will", "can", "all", "many", "time", "you"}
local B = {"not", "but", "were", "had", "them", "she"}
local F = {"the", "of", "and", "to", "a", "in", "is", "it"}

-- a small deterministic generator (independent of math.random's algorithm). Its draws come
-- from the high bits: an LCG modulo 2^31's low bit only alternates, and a row makes an even
-- number of draws, so `s % 2` gave every row the same label (a one-class task).
local function lcg(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return (s // 65536) % n + 1
  end
end

return function(dir, ntrain, ndev, seed)
  os.execute("mkdir -p '" .. dir .. "'")
  local rnd = lcg(seed or 7)
  local function sentence(words)
    local t = {}
    for _ = 1, 6 do
      if rnd(2) == 1 then t[#t + 1] = words[rnd(#words)] else t[#t + 1] = F[rnd(#F)] end
    end
    t[#t + 1] = words[rnd(#words)]
    return table.concat(t, " ")
  end
  for _, split in ipairs{{"train", ntrain or 400}, {"dev", ndev or 100}} do
    local f = assert(io.open(dir .. "/" .. split[1] .. ".tsv", "w"))
    f:write("sentence\tlabel\n")
    for _ = 1, split[2] do
      local y = rnd(2) - 1
      f:write(sentence(y == 1 and A or B), "\t", y, "\n")
    end
    f:close()
  end
  return dir
end
