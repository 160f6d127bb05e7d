// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev The few forge cheatcodes these tests use, declared by hand: forge-std is not on npm in a
/// current version, and the build is offline. Signatures as in forge-std's Vm.sol: forge answers
/// any contract calling them at the cheatcode address.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 timestamp) external;
    function deal(address account, uint256 newBalance) external;
    function prank(address sender) external;
    function label(address account, string calldata newLabel) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function envOr(string calldata name, bool defaultValue) external view returns (bool value);
    function skip(bool skipTest, string calldata reason) external;
    function assertEq(uint256 left, uint256 right, string calldata err) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata err) external pure;
    function assertLe(uint256 left, uint256 right, string calldata err) external pure;
    function assertTrue(bool condition, string calldata err) external pure;
}

/// @dev address(uint160(uint256(keccak256("hevm cheat code"))))
Vm constant VM = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

// Assertions that call the cheatcode (for its message) only when they fail. Every cheatcode call
// costs forge time and the invariants assert after every handler call: asserting through these
// made the campaign about a third faster.

function checkEq(uint256 left, uint256 right, string memory err) pure {
    if (left != right) VM.assertEq(left, right, err);
}

function checkEq(bytes32 left, bytes32 right, string memory err) pure {
    if (left != right) VM.assertEq(left, right, err);
}

function checkLe(uint256 left, uint256 right, string memory err) pure {
    if (left > right) VM.assertLe(left, right, err);
}

function check(bool condition, string memory err) pure {
    if (!condition) VM.assertTrue(condition, err);
}

/// @dev What forge-std's StdInvariant offers, reduced to what these tests use. forge reads
/// `targetContracts()` and `targetSelectors()` from a test contract's ABI after `setUp()`; without
/// them it would call every contract deployed in `setUp` with random data.
abstract contract InvariantTest {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;

    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selectors) internal {
        _targetedSelectors.push(selectors);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }
}

/// @dev forge's console.log(string, uint256), as forge-std's console.sol calls it: a low-level
/// staticcall, since the console address has no code (a typed call would revert on that). Shown
/// with -vv and in the `decoded_logs` of `forge test --json`.
function consoleLog(string memory label, uint256 value) view {
    (bool ok,) = address(0x000000000000000000636F6e736F6c652e6c6f67)
        .staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
    ok;
}
